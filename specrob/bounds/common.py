"""Constants and tensor helpers of bound propagation: float64, the rounding widening
SAFETY * (1 + |x|) applied to every bound (`down`, `up`), and batched products.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import Tensor



METHODS = ("ibp", "crown", "alpha-crown", "alpha-crown-all")
SAFETY = 1e-9  # relative widening of every bound, for float64 rounding
DTYPE = torch.float64
Interval = tuple[Tensor, Tensor]


def down(x: Tensor) -> Tensor:
    """A lower bound widened for float64 rounding (SAFETY * (1 + |x|)). Other dtypes (float32
    bounds of certified training, which prove nothing) are returned as they are: the widening
    is below their resolution anyway."""
    return x - SAFETY * (1 + x.abs()) if x.dtype == DTYPE else x


def up(x: Tensor) -> Tensor:
    """An upper bound widened for float64 rounding (SAFETY * (1 + |x|)); other dtypes as
    they are (see `down`)."""
    return x + SAFETY * (1 + x.abs()) if x.dtype == DTYPE else x


def sum_rest(x: Tensor) -> Tensor:
    """Sum over every axis after the first two: (B, K, ...) -> (B, K)."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum(-1)


def dot(A: Tensor, v: Tensor) -> Tensor:
    """A · v per row: A (B or 1, K, *shape), v (B or 1, *shape) or (*shape) -> (B, K), as one
    batched matrix product (no (B, K, *shape) temporary)."""
    if v.dim() == A.dim() - 2:
        v = v.unsqueeze(0)
    B, K = A.shape[:2]
    A, v = A.reshape(B, K, -1), v.reshape(v.shape[0], -1)
    if B == 1:  # coefficients shared by the batch
        return v @ A[0].T
    if v.shape[0] == 1:
        return (A.reshape(B * K, -1) @ v[0]).reshape(B, K)
    return (A @ v.unsqueeze(-1)).squeeze(-1)


def as_tensor(array: np.ndarray | float | Tensor, device: torch.device,
              dtype: torch.dtype = DTYPE) -> Tensor:
    """A node's weights on `device` in `dtype`. A tensor (the live parameters of a network
    traced from a module, `specrob.network.trace`) keeps its autograd graph: bounds computed
    from it are differentiable in the weights (certified training)."""
    if isinstance(array, Tensor):
        return array.to(device=device, dtype=dtype)
    return torch.as_tensor(np.array(array, dtype=np.float64), dtype=dtype, device=device)


def pos_neg(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.clamp(min=0), x.clamp(max=0)
