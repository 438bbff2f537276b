"""Certified training judged by constraint satisfaction (issue 17; the future work of Casadio et
al., seed 003): the same CR property trained by the constraint loss, by PGD adversarial
training and by its own certified bound (IBP, CROWN-IBP, and IBP mixed with the PGD constraint
loss), on the seed 003 784-100-10 clamp net and a small CNN, each network judged by `specrob
verify`'s constraint satisfaction and its clean accuracy at eps 0.01, 0.05 and 0.1.

`experiment` trains and measures, `claims` states the anchors and checks them, `page` writes
docs/results/certified.md; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.certified import claims, experiment, page
from specrob.reproduce.common import Options, run_paper


def run(options: Options, command: str) -> Path:
    """Train, verify and write <out>/certified.md (returned), its JSON and figure."""
    return run_paper("certified", options, command, experiment=experiment, claims=claims,
                     page=page)
