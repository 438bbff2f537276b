"""Sigmoid and Tanh: CROWN's tangent and chord lines (Zhang et al. 2018, section 3.3).
"""
from __future__ import annotations


import torch
from torch import Tensor

from specrob.network.ir import (Sigmoid,
                                Tanh)
from specrob.bounds.common import DTYPE, dot, down, pos_neg, up
from specrob.bounds.operators.base import Op


class SmoothOp(Op):
    """Sigmoid and Tanh: increasing, convex for x <= 0 and concave for x >= 0, and
    symmetric about (0, f(0)) (f(x) = 2 f(0) - f(-x)). CROWN's linear relaxation (Zhang et al.
    2018, section 3.3) on the input bounds [l, u] of each neuron:

    - upper line: the chord where u <= 0 (convex there), the tangent at the midpoint where
      l >= 0 (concave there); where l < 0 < u, the tangent at the point d in [0, u] whose
      tangent passes through (l, f(l)), found by bisection keeping the end whose tangent is
      above f(l) (any such d is valid: the line is above f on the concave part [0, u], and on
      the convex part [l, 0] above f at both ends), or the chord when no such d <= u exists;
    - lower line: the upper line of the mirrored function on [-u, -l], mirrored back.
    Both lines are loosened by a float64 rounding margin."""

    kind = "relaxed"
    BISECTIONS = 30

    def __init__(self, node: Sigmoid | Tanh, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        self.f0 = 0.5 if isinstance(node, Sigmoid) else 0.0

    def _f(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x) if isinstance(self.node, Sigmoid) else torch.tanh(x)

    def _df(self, x: Tensor) -> Tensor:
        y = self._f(x)
        return y * (1 - y) if isinstance(self.node, Sigmoid) else 1 - y * y

    def interval(self, bounds):
        l, u = bounds[0]
        return down(self._f(l)), up(self._f(u))

    def _upper(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """(slope, intercept) of a line above f on [l, u], elementwise."""
        f, df = self._f, self._df
        fl, fu = f(l), f(u)
        width = u - l
        chord_k = torch.where(width > 0, (fu - fl) / width.clamp_min(1e-300),
                              torch.zeros_like(l))
        m = (l + u) / 2
        tan_k = df(m)
        # the mixed case: the tangent at d >= 0 is above f(l) at l for d >= d*; bisect on
        # [0, u] keeping hi valid (it starts at u, used only where u is valid)
        mixed = (l < 0) & (u > 0)
        k_mix, d, use_tan = chord_k, m, torch.zeros_like(mixed)
        if bool(mixed.any()):
            ok_at_u = fu + df(u) * (l - u) >= fl
            lo, hi = torch.zeros_like(u), u.clamp(min=0.0)
            for _ in range(self.BISECTIONS):
                mid = (lo + hi) / 2
                ok = f(mid) + df(mid) * (l - mid) >= fl
                hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
            use_tan = mixed & ok_at_u
            d = torch.where(use_tan, hi, m)
            k_mix = torch.where(use_tan, df(hi), chord_k)
        concave = l >= 0
        tangent = concave | use_tan
        point = torch.where(concave, m, d)
        k = torch.where(concave, tan_k, torch.where(mixed, k_mix, chord_k))
        # through the tangent point, or through (l, f(l)) for the chord
        b = torch.where(tangent, f(point) - k * point, fl - k * l)
        slack = 1e-12 * (1 + k.abs() * (l.abs() + u.abs()))
        return k, b + slack

    def relaxation(self, l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(lower slope, lower intercept, upper slope, upper intercept), each like l: the lines
        a_l x + b_l <= f(x) <= a_u x + b_u on [l, u]."""
        ku, bu = self._upper(l, u)
        kl, bl = self._upper(-u, -l)  # f(x) = 2 f0 - f(-x) >= 2 f0 - (kl (-x) + bl)
        return kl, 2 * self.f0 - bl, ku, bu

    def back_relaxed(self, A: Tensor, relax, alphas=None) -> tuple[Tensor, Tensor]:
        """Coefficients on the input and the constant of a lower bound of A · f(x): a positive
        coefficient takes the lower line, a negative one the upper line."""
        kl, bl, ku, bu = relax
        Ap, An = pos_neg(A)
        return Ap * kl.unsqueeze(1) + An * ku.unsqueeze(1), dot(Ap, bl) + dot(An, bu)
