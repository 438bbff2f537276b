"""Tibo, Jaeger and Larsen (seed 000) section 7 on Fashion-MNIST: on-manifold robustness R4
(Example 4) with a generator dec(enc(x) + N(0, sigma^2)) from a Wasserstein autoencoder; R4
training against Stutz et al.'s on-manifold adversarial training (Table 4), and R2 against R4
training, each evaluated under both objectives (Table 5).

`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.common import Options, run_paper
from specrob.reproduce.tibo_manifold import claims, experiment, page


def run(options: Options, command: str) -> Path:
    """Reproduce section 7: <out>/tibo-manifold.md (returned), its JSON and figures."""
    return run_paper("tibo-manifold", options, command, experiment=experiment, claims=claims,
                     page=page)
