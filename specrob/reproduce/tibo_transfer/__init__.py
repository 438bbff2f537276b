"""Tibo, Jaeger and Larsen (seed 001) section 4 on Fashion-MNIST: robustness to a distribution
shift by transfer with paired autoencoders (TRANSFER-SEPARATE and TRANSFER-JOINT) against a
plain classifier and Gaussian noise augmentation, on a cut-down grid of corruptions and sample
sizes (Table 2 and Appendix B's Table 4).

`experiment` trains and measures, `claims` holds the paper's numbers and checks its claims,
`page` writes the results page; `run` chains them.
"""
from __future__ import annotations

from pathlib import Path

from specrob.reproduce.common import Options, run_paper
from specrob.reproduce.tibo_transfer import claims, experiment, page


def run(options: Options, command: str) -> Path:
    """Reproduce section 4: <out>/tibo-transfer.md (returned), its JSON and figure."""
    return run_paper("tibo-transfer", options, command, experiment=experiment, claims=claims,
                     page=page)
