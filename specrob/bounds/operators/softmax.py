"""Softmax: interval bounds only (no linear relaxation; bound the logits before it).
"""
from __future__ import annotations


import torch

from specrob.network.ir import (Softmax)
from specrob.bounds.common import DTYPE, down, up
from specrob.bounds.operators.base import Op


class SoftmaxOp(Op):
    kind = "softmax"

    def __init__(self, node: Softmax, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        axis = node.axis
        self.dim = axis + 1 if axis >= 0 else axis

    def interval(self, bounds):
        l, u = (x.movedim(self.dim, -1) for x in bounds[0])
        eye = torch.eye(l.shape[-1], dtype=torch.bool, device=l.device)
        # softmax_i is increasing in z_i and decreasing in every other z_j (IBP):
        # lower_i = exp(l_i) / (exp(l_i) + sum_{j != i} exp(u_j)), upper alike
        low = torch.exp(l - torch.logsumexp(torch.where(eye, l.unsqueeze(-1), u.unsqueeze(-2)), -1))
        high = torch.exp(u - torch.logsumexp(torch.where(eye, u.unsqueeze(-1), l.unsqueeze(-2)), -1))
        low, high = down(low).clamp(min=0), up(high).clamp(max=1)
        return low.movedim(-1, self.dim), high.movedim(-1, self.dim)
