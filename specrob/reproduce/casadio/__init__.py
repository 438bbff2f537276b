"""Casadio et al. 2022 (seed 003), "Neural network robustness as a verification property":
seven training regimes on Fashion-MNIST, evaluated by constraint security under SR, SCR and LR
attacks (Figs. 2-4, App. A), clean accuracy (Table 2), constraint accuracy (Def. 7) and, beyond
the paper, constraint satisfaction (Def. 5) from `specrob verify`.

`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.casadio import claims, experiment, page
from specrob.reproduce.common import Options, run_paper


def run(options: Options, command: str) -> Path:
    """Reproduce the paper: <out>/casadio.md (returned), its JSON and figures."""
    return run_paper("casadio", options, command, experiment=experiment, claims=claims,
                     page=page)
