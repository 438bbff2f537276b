"""Tibo, Jaeger and Larsen (seeds 000/001) §3.3 on Fashion-MNIST: a network trained without
regularisation (NO REG) against one co-trained with an adversarial generator (OURS,
Algorithm 1, losses 9-10) and one trained with Hein and Andriushchenko's Cross-Lipschitz
regulariser (HEIN); Table 1 (clean accuracy), Figure 3 (margin curves R(eps) and their
areas R) and Table 3 (which attack finds the closest adversarial example).

`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.common import Options, run_paper
from specrob.reproduce.tibo import claims, experiment, page


def run(options: Options, command: str) -> Path:
    """Reproduce the paper: <out>/tibo.md (returned), its JSON and figure."""
    return run_paper("tibo", options, command, experiment=experiment, claims=claims, page=page)
