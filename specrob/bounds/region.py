"""The input set of bound propagation: the l_p ball B_p(x0, eps) intersected with the domain
box, batched over centres, with its concretisation of linear functions.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from specrob.network.ir import (Network)
from specrob.bounds.common import DTYPE, dot


class BoundRegion:
    """B_p(x0, eps) ∩ [low, high]^n for a batch of centres, with its enclosing box."""

    def __init__(self, x0: Tensor, eps: Tensor, p: float, low: float | Tensor,
                 high: float | Tensor):
        """`low`/`high`: numbers, or tensors (n,) or (B, n) of per-coordinate bounds."""
        self.x0, self.eps, self.p = x0, eps, p
        if isinstance(low, Tensor):
            self.box_low = torch.maximum(x0 - eps[:, None], low.expand_as(x0))
        else:
            self.box_low = torch.clamp(x0 - eps[:, None], min=low)
        if isinstance(high, Tensor):
            self.box_high = torch.minimum(x0 + eps[:, None], high.expand_as(x0))
        else:
            self.box_high = torch.clamp(x0 + eps[:, None], max=high)
        self.box_mid = (self.box_low + self.box_high) / 2
        self.box_rad = (self.box_high - self.box_low) / 2

    def part(self, rows: slice) -> BoundRegion:
        out = object.__new__(BoundRegion)
        out.x0, out.eps, out.p = self.x0[rows], self.eps[rows], self.p
        out.box_low, out.box_high = self.box_low[rows], self.box_high[rows]
        out.box_mid, out.box_rad = self.box_mid[rows], self.box_rad[rows]
        return out

    def concretise(self, A: Tensor | None, c: Tensor) -> Tensor:
        """A lower bound of A · x + c over the set, (B, K): the larger of the ball's
        (c + A x0 - eps ||A||_q, q the dual norm) and the enclosing box's; both are valid since
        the set lies in each."""
        B = self.x0.shape[0]
        if A is None:
            return c.expand(B, c.shape[1])
        A = A.reshape(A.shape[0], A.shape[1], -1)
        # the box in centre-radius form: A mid - |A| rad
        box = c + dot(A, self.box_mid) - dot(A.abs(), self.box_rad)
        if self.p == math.inf:  # ball ∩ box is the box itself
            return box
        q = 2 if self.p == 2 else math.inf  # the dual norm
        dual = torch.linalg.vector_norm(A, ord=q, dim=-1)
        radius = torch.where(dual > 0, self.eps[:, None] * dual, torch.zeros_like(dual))
        ball = c + dot(A, self.x0) - radius
        return torch.maximum(ball, box)


def _bound(value, x0: Tensor, name: str) -> float | Tensor:
    """A domain bound: a number, or per-coordinate bounds (n,) or (B, n) as a (B, n) tensor."""
    if np.ndim(value) == 0 and not (isinstance(value, Tensor) and value.dim() > 0):
        return float(value)
    t = torch.as_tensor(value, dtype=DTYPE, device=x0.device).detach()
    B, n = x0.shape
    if t.numel() == n:
        return t.reshape(1, n).expand(B, n)
    if t.numel() == B * n:
        return t.reshape(B, n)
    raise ValueError(f"{name} must be a number or per-coordinate bounds of shape ({n},) or "
                     f"({B}, {n}); got {tuple(t.shape)}")


def input_region(net: Network, centres, eps, p: float, low, high) -> BoundRegion:
    device = centres.device if isinstance(centres, Tensor) else torch.device("cpu")
    x0 = torch.as_tensor(centres, dtype=DTYPE, device=device).detach()
    B = x0.shape[0] if x0.dim() > 0 else 0
    if x0.dim() < 2 or x0[0].numel() != net.input_size:
        raise ValueError(f"{net.source}: expected centres of shape (B, {net.input_size}) or "
                         f"(B, *{tuple(net.input_shape)}); got {tuple(x0.shape)}")
    x0 = x0.reshape(B, net.input_size)
    e = torch.as_tensor(eps, dtype=DTYPE, device=device).detach().reshape(-1)
    if e.numel() == 1:
        e = e.expand(B)
    if e.numel() != B or bool((e < 0).any()) or bool(torch.isnan(e).any()):
        raise ValueError(f"eps must be a number >= 0 or one per centre ({B}); got shape "
                         f"{tuple(e.shape)}")
    p = float(p)
    if p not in (1.0, 2.0, math.inf):
        raise ValueError(f"p must be 1, 2 or inf; got {p}")
    region = BoundRegion(x0, e.contiguous(), p, _bound(low, x0, "low"), _bound(high, x0, "high"))
    if bool((region.box_low > region.box_high).any()):
        shown = f"[{low}, {high}]" if np.ndim(low) == 0 and np.ndim(high) == 0 else \
            "of per-coordinate bounds"
        raise ValueError(f"the input set is empty for some centre: the ball does not meet the "
                         f"box {shown}")
    return region
