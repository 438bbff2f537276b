"""MaxPool: DeepPoly's relaxation (Singh et al. 2019): below, the input with the largest lower
bound; above, the window's largest upper bound, or that input exactly when it dominates.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from specrob.network.ir import (MaxPool)
from specrob.bounds.common import DTYPE
from specrob.bounds.operators.base import Op


class MaxPoolOp(Op):
    """MaxPool. Per window with input bounds [l_j, u_j] (DeepPoly's relaxation, Singh et al.
    2019): y >= x_k for k the input with the largest lower bound; y <= max_j u_j, or y = x_k
    exactly where l_k >= u_j for every other input j of the window. Padding never wins."""

    kind = "relaxed"
    node: MaxPool

    def __init__(self, node: MaxPool, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        C, H, W = self.in_shapes[0]
        top, left, bottom, right = node.pads
        Hp, Wp = H + top + bottom, W + left + right
        # each window's positions as flat indices into the (C, H, W) input, channel 0
        pos = torch.arange(Hp * Wp, dtype=DTYPE, device=device).reshape(1, 1, Hp, Wp)
        pos = F.unfold(pos, node.kernel, dilation=node.dilations, stride=node.strides)
        pos = pos[0].round().long()  # (kh * kw, L)
        r, c = pos // Wp - top, pos % Wp - left
        self.real = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        self.flat = torch.where(self.real, r * W + c, torch.zeros_like(pos))
        self.channel = (torch.arange(C, device=device) * (H * W)).reshape(C, 1, 1)

    def _f(self, x: Tensor) -> Tensor:
        node = self.node
        if any(node.pads):
            top, left, bottom, right = node.pads
            x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, node.kernel, node.strides, dilation=node.dilations)

    def interval(self, bounds):
        l, u = bounds[0]
        return self._f(l), self._f(u)  # a max of exact values is exact

    def _windows(self, x: Tensor) -> Tensor:
        """(B, C, kh * kw, L): the values of each window, -inf on padding."""
        B, C, H, W = x.shape
        x = x.reshape(B, C, H * W)
        idx = self.flat.reshape(1, 1, -1).expand(B, C, -1)
        w = x.gather(2, idx).reshape(B, C, *self.flat.shape)
        return w.masked_fill(~self.real, -math.inf)

    def relaxation(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(index, exact, top): per output, the flat input index (into C*H*W) of the input
        with the largest lower bound, whether it is the maximum on the whole set, and the
        largest upper bound of the window; each (B, C*Ho*Wo)."""
        B = l.shape[0]
        lw, uw = self._windows(l), self._windows(u)
        best = lw.argmax(2, keepdim=True)  # (B, C, 1, L)
        lk = lw.gather(2, best)
        others = uw.scatter(2, best, -math.inf).amax(2, keepdim=True)
        exact = (lk >= others)[:, :, 0]
        top = uw.amax(2)
        index = self.flat.expand(B, *self.channel.shape[:1], *self.flat.shape)
        index = (index.gather(2, best) + self.channel)[:, :, 0]
        return index.reshape(B, -1), exact.reshape(B, -1), top.reshape(B, -1)

    def back_relaxed(self, A: Tensor, relax, alphas=None) -> tuple[Tensor, Tensor]:
        index, exact, top = relax
        B = index.shape[0]
        K = A.shape[1]
        A = A.reshape(A.shape[0], K, -1).expand(B, K, index.shape[1])
        on_x = (A >= 0) | exact.unsqueeze(1)
        c = (torch.where(on_x, torch.zeros_like(A), A) * top.unsqueeze(1)).sum(-1)
        Ax = torch.zeros((B, K, math.prod(self.in_shapes[0])), dtype=A.dtype, device=A.device)
        Ax = Ax.scatter_add(2, index.unsqueeze(1).expand(B, K, -1),
                            torch.where(on_x, A, torch.zeros_like(A)))
        return Ax.reshape(B, K, *self.in_shapes[0]), c
