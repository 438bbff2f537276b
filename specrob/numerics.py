"""Numerics shared by the logics and the searches: functions whose plain torch versions have
infinite derivatives at 0 (sqrt, p-th roots), which would turn gradients into NaN."""
from __future__ import annotations

import torch

TINY = 1e-12


def safe_root(s: torch.Tensor, p: float) -> torch.Tensor:
    """s ** (1/p) for s >= 0, with gradient 0 instead of infinity at s = 0."""
    return torch.where(s > 0, s.clamp_min(TINY) ** (1.0 / p), torch.zeros_like(s))


def safe_l2(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """||v||_2 along `dim`, with gradient 0 at v = 0."""
    return safe_root((v * v).sum(dim), 2.0)
