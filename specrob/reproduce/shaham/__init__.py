"""Shaham et al. (seed 002), §5.1: robust optimisation (Algorithm 1) with l_1, l_2 and l_inf
uncertainty sets against a baseline convnet: Table 1 (clean accuracy and accuracy on the set A
of the baseline's single-step adversarial examples) and Figure 3 (accuracy under FGSM vs eps).

`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.common import Options, run_paper
from specrob.reproduce.shaham import claims, experiment, page


def run(options: Options, command: str) -> Path:
    """Reproduce the paper: <out>/shaham.md (returned), its JSON and figures."""
    return run_paper("shaham", options, command, experiment=experiment, claims=claims,
                     page=page)
