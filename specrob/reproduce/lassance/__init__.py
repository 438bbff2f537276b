"""Lassance et al. (seed 004), "Structural robustness for deep learning architectures":
local Lipschitz robustness alpha_lim(r) (Fig. 5), the dataset incompatibility of Lipschitz
constraints (Figs. 1 and 3) and accuracy under Gaussian noise (Fig. 4).

The paper used CIFAR-10/100 and ImageNet32 with pretrained ResNets; we use Fashion-MNIST (and
scikit-learn's digits for the incompatibility curves), one small MLP trained three ways.
`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.common import Options, run_paper
from specrob.reproduce.lassance import claims, experiment, page


def run(options: Options, command: str) -> Path:
    """Reproduce the paper: <out>/lassance.md (returned), its JSON and figures."""
    return run_paper("lassance", options, command, experiment=experiment, claims=claims,
                     page=page)
