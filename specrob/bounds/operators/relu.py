"""ReLU, LeakyReLU and Clip by their decompositions into ReLU terms: CROWN's triangle
relaxation with a free lower slope alpha per unstable neuron (alpha-CROWN, Xu et al. 2021) and
the beta terms of split constraints (beta-CROWN, Wang et al. 2021).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from specrob.network.ir import (Clip, LeakyRelu, Relu)
from specrob.bounds.common import DTYPE, dot, down, sum_rest, up
from specrob.bounds.operators.base import Op


class KinkOp(Op):
    """Relu, LeakyRelu, Clip as  y = a0 z + c0 + sum_k g_k relu(sigma_k z + h_k): each ReLU
    term gets the CROWN relaxation (Zhang et al. 2018) on its own pre-activation bounds."""

    kind = "kink"
    node: Relu | LeakyRelu | Clip

    def __init__(self, node: Relu | LeakyRelu | Clip, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        self.a0, self.c0 = 0.0, 0.0
        self.terms: list[tuple[float, float, float]] = []  # (g, sigma, h)
        if isinstance(node, Relu):
            self.terms = [(1.0, 1.0, 0.0)]
        elif isinstance(node, LeakyRelu):  # alpha z + (1 - alpha) relu(z)
            self.a0 = float(node.alpha)
            self.terms = [(1.0 - self.a0, 1.0, 0.0)]
        else:
            lo, hi = node.low, node.high
            if lo is not None and hi is not None and lo > hi:
                self.c0 = float(hi)  # torch.clamp gives high everywhere
            elif lo is not None and hi is not None:  # lo + relu(z - lo) - relu(z - hi)
                self.c0 = float(lo)
                self.terms = [(1.0, 1.0, -float(lo)), (-1.0, 1.0, -float(hi))]
            elif lo is not None:  # lo + relu(z - lo)
                self.c0, self.terms = float(lo), [(1.0, 1.0, -float(lo))]
            elif hi is not None:  # hi - relu(hi - z)
                self.c0, self.terms = float(hi), [(-1.0, -1.0, float(hi))]
            else:
                self.a0 = 1.0
        self.terms = [t for t in self.terms if t[0] != 0.0]
        self.kinks = [-h / sigma for _, sigma, h in self.terms]

    def _f(self, z: Tensor) -> Tensor:
        node = self.node
        if isinstance(node, Relu):
            return torch.relu(z)
        if isinstance(node, LeakyRelu):
            return F.leaky_relu(z, node.alpha)
        if node.low is None and node.high is None:
            return z
        return torch.clamp(z, node.low, node.high)

    def interval(self, bounds):
        l, u = bounds[0]
        if isinstance(self.node, LeakyRelu):
            if self.node.alpha >= 0:  # monotone
                return down(self._f(l)), up(self._f(u))
            # not monotone: the extremes are at the ends or at the kink 0
            values = torch.stack([self._f(l), self._f(u), self._f(torch.clamp(torch.zeros_like(l), l, u))])
            return down(values.amin(0)), up(values.amax(0))
        return self._f(l), self._f(u)  # relu and clamp are monotone and exact in floats

    def unstable(self, l: Tensor, u: Tensor) -> Tensor:
        """Where some ReLU term's pre-activation changes sign on [l, u]."""
        out = torch.zeros_like(l, dtype=torch.bool)
        for k in self.kinks:
            out |= (l < k) & (k < u)
        return out

    def relaxation(self, l: Tensor, u: Tensor) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per ReLU term, over w = sigma z + h in [wl, wu]: the upper line relu(w) <= s w + t
        through (wl, 0), (wu, wu) (CROWN), the default lower slope (CROWN's heuristic:
        1 if wu > -wl else 0) and the unstable mask, where any lower slope in [0, 1] is valid."""
        out = []
        for _, sigma, h in self.terms:
            wl, wu = (l + h, u + h) if sigma > 0 else (h - u, h - l)
            active, unstable = wl >= 0, (wl < 0) & (wu > 0)
            s = torch.where(unstable, wu / (wu - wl).clamp_min(torch.finfo(l.dtype).tiny), active.to(l.dtype))
            t = torch.where(unstable, -s * wl, torch.zeros_like(wl))
            alpha = torch.where(unstable, (wu > -wl).to(l.dtype), active.to(l.dtype))
            out.append((s, t, alpha, unstable))
        return out

    def back_relaxed(self, A: Tensor, relax, alphas: list[Tensor | None] | None
                     ) -> tuple[Tensor, Tensor | float]:
        """Coefficients on z and the constant of a lower bound of A · y: a positive
        coefficient of relu(w) takes the lower line alpha w, a negative one the upper line."""
        Az = A * self.a0 if self.a0 else None
        c = sum_rest(A) * self.c0 if self.c0 else 0.0
        for k, ((g, sigma, h), (s, t, alpha, unstable)) in enumerate(zip(self.terms, relax)):
            G = A if g == 1 else A * g
            slope = alpha.unsqueeze(1)
            free = None if alphas is None else alphas[k]
            if free is not None:
                slope = torch.where(unstable.unsqueeze(1), free, slope)
            Aw = G * torch.where(G >= 0, slope, s.unsqueeze(1))
            c = c + dot(G.clamp(max=0), t) + (h * sum_rest(Aw) if h else 0.0)
            Aw = Aw if sigma > 0 else -Aw
            Az = Aw if Az is None else Az + Aw
        if Az is None:  # a constant node (a clip with low > high)
            Az = torch.zeros_like(A)
        return Az, c
