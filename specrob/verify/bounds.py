"""Sound bound propagation through the network IR: lower bounds of linear specifications
C f(x) + d over the input set B_p(x0, eps) ∩ [low, high]^n, batched over centres.

Four methods, each at least as tight as the one before (every result is intersected with the
previous one, so this holds by construction):

- ``"ibp"``: interval bound propagation (Gowal et al. 2018) from the box enclosing ball ∩ box.
- ``"crown"``: linear relaxations propagated backwards through the graph (Zhang et al. 2018),
  with every intermediate pre-activation bounded by CROWN itself (back-substituted to the
  input) and intersected with its interval bound; the linear function reached at the input is
  concretised on the ball (dual norm) and on the enclosing box, keeping the larger bound.
- ``"alpha-crown"``: CROWN whose lower ReLU slopes are optimised per specification row by
  projected gradient ascent (Xu et al. 2021), keeping the best bound of all iterations. The
  intermediate bounds are CROWN's (only the final specification's slopes are optimised).
- ``"alpha-crown-all"``: alpha-CROWN on every layer (Xu et al. 2021, "Fast and Complete"):
  the intermediate bounds are computed layer by layer, each neuron's with slopes optimised for
  it over the (already optimised) bounds of the layers before it, keeping each neuron's best
  bound of all iterations and intersecting with CROWN's; the final rows are then optimised on
  these bounds, and the result is the better of this and alpha-crown's.

Supported nodes: IBP handles every IR node but LogSoftmax. CROWN relaxes Affine, Elementwise,
Add, Conv, BatchNorm, Reshape and AveragePool exactly (they are linear); Relu, LeakyRelu and
Clip by their ReLU decompositions; Sigmoid and Tanh by CROWN's tangent and chord lines (Zhang
et al. 2018, section 3.3); MaxPool by DeepPoly's (Singh et al. 2019: the input with the
largest lower bound below, the window's largest upper bound above, or that input exactly when
it dominates the window). Every intermediate bound is intersected with its interval bound.
Softmax raises NotImplementedError (bound the logits before it instead; see `unsupported`).
Only ReLU terms have optimisable slopes.

Bounds are for the network in exact arithmetic on its float64 weights; every computed bound is
widened by SAFETY * (1 + |bound|) to cover float64 rounding (not a rigorous floating-point
analysis, but ample for networks of ordinary magnitude). A float32 execution of the same
network can differ from exact arithmetic by about 1e-6 relative: that is not covered.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, MaxPool, Network, Node, Relu, Reshape, Sigmoid,
                                Softmax, Tanh)

__all__ = ["METHODS", "SAFETY", "interval_bounds", "output_bounds", "spec_bounds", "supports",
           "unsupported"]

METHODS = ("ibp", "crown", "alpha-crown", "alpha-crown-all")
SAFETY = 1e-9  # relative widening of every bound, for float64 rounding
DTYPE = torch.float64
Interval = tuple[Tensor, Tensor]



# --- small helpers -------------------------------------------------------------------------

def _down(x: Tensor) -> Tensor:
    """A lower bound widened for float64 rounding (SAFETY * (1 + |x|))."""
    return x - SAFETY * (1 + x.abs())


def _up(x: Tensor) -> Tensor:
    """An upper bound widened for float64 rounding (SAFETY * (1 + |x|))."""
    return x + SAFETY * (1 + x.abs())


def _sum_rest(x: Tensor) -> Tensor:
    """Sum over every axis after the first two: (B, K, ...) -> (B, K)."""
    return x.reshape(x.shape[0], x.shape[1], -1).sum(-1)


def _dot(A: Tensor, v: Tensor) -> Tensor:
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


def _tensor(array: np.ndarray | float, device: torch.device) -> Tensor:
    return torch.as_tensor(np.array(array, dtype=np.float64), dtype=DTYPE, device=device)


def _pos_neg(x: Tensor) -> tuple[Tensor, Tensor]:
    return x.clamp(min=0), x.clamp(max=0)


# --- the nodes as bound operators ----------------------------------------------------------

class _Op:
    """One IR node with its interval map; linear nodes also map coefficients backwards."""

    kind = "linear"  # linear | kink (ReLU decompositions) | relaxed (other lines) | softmax

    def __init__(self, node: Node, shapes: dict[str, tuple[int, ...]]):
        self.node = node
        self.in_shapes = [shapes[v] for v in node.inputs]
        self.out_shape = tuple(node.shape)

    def interval(self, bounds: Sequence[Interval]) -> Interval:
        raise NotImplementedError

    def back(self, A: Tensor) -> list[Tensor]:
        """The coefficients on the inputs of A · output (A: (B, K, *out_shape))."""
        raise NotImplementedError

    def const(self, A: Tensor) -> Tensor | None:
        """The constant part of A · output, (B, K), or None when the node has no offset."""
        return None


class _AffineOp(_Op):
    def __init__(self, node: Affine, shapes, device):
        super().__init__(node, shapes)
        self.W = _tensor(node.weight, device)
        self.Wp, self.Wn = _pos_neg(self.W)
        self.b = _tensor(node.bias, device)

    def interval(self, bounds):
        l, u = bounds[0]
        # IBP (Gowal et al. 2018): positive weights take the same side, negative the other
        return (_down(l @ self.Wp.T + u @ self.Wn.T + self.b),
                _up(u @ self.Wp.T + l @ self.Wn.T + self.b))

    def back(self, A):
        return [A @ self.W]

    def const(self, A):
        return (A @ self.b).reshape(A.shape[0], A.shape[1], -1).sum(-1)


class _ScaleOp(_Op):
    """y = x * scale + shift coordinatewise (Elementwise; BatchNorm per channel)."""

    def __init__(self, node: Elementwise | BatchNorm, shapes, device):
        super().__init__(node, shapes)
        if isinstance(node, BatchNorm):
            a, b = node.scale_shift()
            extra = (1,) * (len(self.out_shape) - 1)
            scale, shift = a.reshape(-1, *extra), b.reshape(-1, *extra)
        else:
            scale, shift = node.scale, node.shift
        self.scale = _tensor(np.broadcast_to(scale, self.out_shape), device)
        self.shift = _tensor(np.broadcast_to(shift, self.out_shape), device)
        self.sp, self.sn = _pos_neg(self.scale)

    def interval(self, bounds):
        l, u = bounds[0]
        return (_down(self.sp * l + self.sn * u + self.shift),
                _up(self.sp * u + self.sn * l + self.shift))

    def back(self, A):
        return [A * self.scale]

    def const(self, A):
        return _dot(A, self.shift)


class _AddOp(_Op):
    def __init__(self, node: Add, shapes, device):
        super().__init__(node, shapes)
        self.subtract = node.subtract

    def interval(self, bounds):
        (l1, u1), (l2, u2) = bounds
        if self.subtract:
            return _down(l1 - u2), _up(u1 - l2)
        return _down(l1 + l2), _up(u1 + u2)

    def back(self, A):
        return [A, -A if self.subtract else A]


class _ReshapeOp(_Op):
    def __init__(self, node: Reshape, shapes, device):
        super().__init__(node, shapes)

    def interval(self, bounds):
        l, u = bounds[0]
        return l.reshape(l.shape[0], *self.out_shape), u.reshape(u.shape[0], *self.out_shape)

    def back(self, A):
        return [A.reshape(A.shape[0], A.shape[1], *self.in_shapes[0])]


class _ConvOp(_Op):
    """Conv, and AveragePool as a depthwise convolution by ones times 1 / (window count);
    backwards it is the transposed convolution (the adjoint of the linear map)."""

    def __init__(self, node: Conv | AveragePool, shapes, device):
        super().__init__(node, shapes)
        C, H, W = self.in_shapes[0]
        self.pads = tuple(node.pads)  # (top, left, bottom, right)
        self.stride = tuple(node.strides)
        self.out_scale: Tensor | None = None
        if isinstance(node, Conv):
            self.W = _tensor(node.weight, device)
            self.b = _tensor(node.bias, device)
            self.b_map = self.b[:, None, None].expand(self.out_shape).contiguous()
            self.dilation, self.groups = tuple(node.dilations), int(node.group)
        else:
            kh, kw = node.kernel
            self.W = torch.ones((C, 1, kh, kw), dtype=DTYPE, device=device)
            self.b = None
            self.dilation, self.groups = (1, 1), C
            if node.count_include_pad or not any(self.pads):
                self.W = self.W / (kh * kw)
            else:  # the mean over the real pixels of each window
                ones = torch.ones((1, 1, H, W), dtype=DTYPE, device=device)
                counts = self._apply(ones, torch.ones((1, 1, kh, kw), dtype=DTYPE,
                                                      device=device), groups=1)
                self.out_scale = 1.0 / counts[0]  # (1, H_out, W_out)
        self.Wp, self.Wn = _pos_neg(self.W)
        self.has_neg = bool((self.W < 0).any())

    def _apply(self, x: Tensor, weight: Tensor, groups: int | None = None) -> Tensor:
        top, left, bottom, right = self.pads
        if any(self.pads):
            x = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(x, weight, None, self.stride, 0, self.dilation,
                     self.groups if groups is None else groups)
        return y if self.out_scale is None else y * self.out_scale

    def _bias(self, y: Tensor) -> Tensor:
        return y if self.b is None else y + self.b[:, None, None]

    def interval(self, bounds):
        l, u = bounds[0]
        lo, hi = self._apply(l, self.Wp), self._apply(u, self.Wp)
        if self.has_neg:
            lo, hi = lo + self._apply(u, self.Wn), hi + self._apply(l, self.Wn)
        return _down(self._bias(lo)), _up(self._bias(hi))

    def back(self, A):
        B, K = A.shape[:2]
        C, H, W = self.in_shapes[0]
        top, left, bottom, right = self.pads
        if self.out_scale is not None:
            A = A * self.out_scale
        A = A.reshape(B * K, *self.out_shape)
        kh, kw = self.W.shape[2:]
        (sh, sw), (dh, dw) = self.stride, self.dilation
        Hp, Wp = H + top + bottom, W + left + right
        Ho, Wo = self.out_shape[1:]
        extra = (Hp - ((Ho - 1) * sh + dh * (kh - 1) + 1), Wp - ((Wo - 1) * sw + dw * (kw - 1) + 1))
        X = F.conv_transpose2d(A, self.W, None, self.stride, 0, extra, self.groups, self.dilation)
        X = X[:, :, top:top + H, left:left + W]
        return [X.reshape(B, K, C, H, W)]

    def const(self, A):
        return None if self.b is None else _dot(A, self.b_map)


class _KinkOp(_Op):
    """Relu, LeakyRelu, Clip as  y = a0 z + c0 + sum_k g_k relu(sigma_k z + h_k): each ReLU
    term gets the CROWN relaxation (Zhang et al. 2018) on its own pre-activation bounds."""

    kind = "kink"

    def __init__(self, node: Relu | LeakyRelu | Clip, shapes, device):
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
                return _down(self._f(l)), _up(self._f(u))
            # not monotone: the extremes are at the ends or at the kink 0
            values = torch.stack([self._f(l), self._f(u), self._f(torch.clamp(torch.zeros_like(l), l, u))])
            return _down(values.amin(0)), _up(values.amax(0))
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
            s = torch.where(unstable, wu / (wu - wl).clamp_min(1e-300), active.to(DTYPE))
            t = torch.where(unstable, -s * wl, torch.zeros_like(wl))
            alpha = torch.where(unstable, (wu > -wl).to(DTYPE), active.to(DTYPE))
            out.append((s, t, alpha, unstable))
        return out

    def back_relaxed(self, A: Tensor, relax, alphas: list[Tensor | None] | None
                     ) -> tuple[Tensor, Tensor]:
        """Coefficients on z and the constant of a lower bound of A · y: a positive
        coefficient of relu(w) takes the lower line alpha w, a negative one the upper line."""
        Az = A * self.a0 if self.a0 else None
        c = _sum_rest(A) * self.c0 if self.c0 else 0.0
        for k, ((g, sigma, h), (s, t, alpha, unstable)) in enumerate(zip(self.terms, relax)):
            G = A if g == 1 else A * g
            slope = alpha.unsqueeze(1)
            if alphas is not None and alphas[k] is not None:
                slope = torch.where(unstable.unsqueeze(1), alphas[k], slope)
            Aw = G * torch.where(G >= 0, slope, s.unsqueeze(1))
            c = c + _dot(G.clamp(max=0), t) + (h * _sum_rest(Aw) if h else 0.0)
            Aw = Aw if sigma > 0 else -Aw
            Az = Aw if Az is None else Az + Aw
        if Az is None:  # a constant node (a clip with low > high)
            Az = torch.zeros_like(A)
        return Az, c


class _SmoothOp(_Op):
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

    def __init__(self, node: Sigmoid | Tanh, shapes, device):
        super().__init__(node, shapes)
        self.f0 = 0.5 if isinstance(node, Sigmoid) else 0.0

    def _f(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x) if isinstance(self.node, Sigmoid) else torch.tanh(x)

    def _df(self, x: Tensor) -> Tensor:
        y = self._f(x)
        return y * (1 - y) if isinstance(self.node, Sigmoid) else 1 - y * y

    def interval(self, bounds):
        l, u = bounds[0]
        return _down(self._f(l)), _up(self._f(u))

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
        Ap, An = _pos_neg(A)
        return Ap * kl.unsqueeze(1) + An * ku.unsqueeze(1), _dot(Ap, bl) + _dot(An, bu)


class _MaxPoolOp(_Op):
    """MaxPool. Per window with input bounds [l_j, u_j] (DeepPoly's relaxation, Singh et al.
    2019): y >= x_k for k the input with the largest lower bound; y <= max_j u_j, or y = x_k
    exactly where l_k >= u_j for every other input j of the window. Padding never wins."""

    kind = "relaxed"

    def __init__(self, node: MaxPool, shapes, device):
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


class _SoftmaxOp(_Op):
    kind = "softmax"

    def __init__(self, node: Softmax, shapes, device):
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
        low, high = _down(low).clamp(min=0), _up(high).clamp(max=1)
        return low.movedim(-1, self.dim), high.movedim(-1, self.dim)


_OPS = {Affine: _AffineOp, Elementwise: _ScaleOp, BatchNorm: _ScaleOp, Add: _AddOp,
        Reshape: _ReshapeOp, Conv: _ConvOp, AveragePool: _ConvOp, Relu: _KinkOp,
        LeakyRelu: _KinkOp, Clip: _KinkOp, Sigmoid: _SmoothOp, Tanh: _SmoothOp,
        MaxPool: _MaxPoolOp, Softmax: _SoftmaxOp}


class _Compiled:
    """A network's nodes as bound operators on one device (float64), built once per network."""

    def __init__(self, net: Network, device: torch.device):
        # the network's fields, not the network: the cache holds this weakly keyed by it
        self.source, self.input_name, self.output_name = net.source, net.input_name, net.output_name
        self.input_shape, self.output_shape = tuple(net.input_shape), tuple(net.output_shape)
        shapes = {net.input_name: tuple(net.input_shape)}
        self.ops: list[_Op] = []
        for node in net.nodes:
            if type(node) not in _OPS:
                raise NotImplementedError(f"{net.source}: no bound propagation for "
                                          f"{type(node).__name__} node '{node.name}'")
            self.ops.append(_OPS[type(node)](node, shapes, device))
            shapes[node.output] = tuple(node.shape)
        self.shapes = shapes
        self.producer = {node.output: i for i, node in enumerate(net.nodes)}
        # the nodes the output depends on
        needed, live = {net.output_name}, set()
        for i in reversed(range(len(net.nodes))):
            if net.nodes[i].output in needed:
                live.add(i)
                needed.update(net.nodes[i].inputs)
        self.live = sorted(live)
        self.consumers: dict[str, list[int]] = {}
        for i in self.live:
            for v in net.nodes[i].inputs:
                self.consumers.setdefault(v, []).append(i)
        self.max_size = max(math.prod(s) for s in shapes.values())


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(net: Network, device: torch.device) -> _Compiled:
    per_net = _CACHE.setdefault(net, {})
    if device not in per_net:
        per_net[device] = _Compiled(net, device)
    return per_net[device]


# --- the input set -------------------------------------------------------------------------

class _Region:
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

    def part(self, rows: slice) -> _Region:
        out = object.__new__(_Region)
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
        box = c + _dot(A, self.box_mid) - _dot(A.abs(), self.box_rad)
        if self.p == math.inf:  # ball ∩ box is the box itself
            return box
        q = 2 if self.p == 2 else math.inf  # the dual norm
        dual = torch.linalg.vector_norm(A, ord=q, dim=-1)
        radius = torch.where(dual > 0, self.eps[:, None] * dual, torch.zeros_like(dual))
        ball = c + _dot(A, self.x0) - radius
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


def _region(net: Network, centres, eps, p: float, low, high) -> _Region:
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
    region = _Region(x0, e.contiguous(), p, _bound(low, x0, "low"), _bound(high, x0, "high"))
    if bool((region.box_low > region.box_high).any()):
        shown = f"[{low}, {high}]" if np.ndim(low) == 0 and np.ndim(high) == 0 else \
            "of per-coordinate bounds"
        raise ValueError(f"the input set is empty for some centre: the ball does not meet the "
                         f"box {shown}")
    return region


# --- propagation ---------------------------------------------------------------------------

def interval_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor,
                    *, p: float, low, high) -> dict[str, Interval]:
    """IBP bounds (lower, upper), each (B, *shape), of the input and of every value the output
    depends on, over B_p(centre, eps) ∩ [low, high]^n. Raises ValueError for an empty set."""
    region = _region(net, centres, eps, p, low, high)
    with torch.no_grad():
        return _ibp(_compiled(net, region.x0.device), region)


def _ibp(comp: _Compiled, region: _Region) -> dict[str, Interval]:
    """Interval bounds of every live value (Gowal et al. 2018), from the enclosing box."""
    B, shape = region.x0.shape[0], tuple(comp.input_shape)
    bounds = {comp.input_name: (region.box_low.reshape(B, *shape),
                                    region.box_high.reshape(B, *shape))}
    for i in comp.live:
        op = comp.ops[i]
        bounds[op.node.output] = op.interval([bounds[v] for v in op.node.inputs])
    return bounds


class _Crown:
    """CROWN (Zhang et al. 2018) on one batch: intermediate bounds in topological order, then
    lower bounds of linear functions of any value by backward propagation through the DAG.

    `ibp` holds the bounds every value is intersected with (interval bounds, or the bounds of
    an earlier, looser pass). With `alpha_steps` > 0 the intermediate bounds are alpha-CROWN's
    (Xu et al. 2021): each value's bounds with lower ReLU slopes optimised for it (per bounded
    neuron, over the relaxations of the values before it, which are already final)."""

    alpha_steps, alpha_lr = 0, 0.1

    def __init__(self, comp: _Compiled, region: _Region, ibp: dict[str, Interval],
                 chunk_elements: int, alpha_steps: int = 0, alpha_lr: float = 0.1):
        self.comp, self.region, self.chunk = comp, region, chunk_elements
        self.alpha_steps, self.alpha_lr = alpha_steps, alpha_lr
        self.B = region.x0.shape[0]
        self.bounds: dict[str, Interval] = {comp.input_name: ibp[comp.input_name]}
        self.relax: dict[int, list] = {}
        for i in comp.live:
            op = comp.ops[i]
            if op.kind == "softmax":
                raise NotImplementedError(
                    f"{comp.source}: CROWN has no linear relaxation of Softmax node "
                    f"'{op.node.name}'; bound the logits before the softmax, or use "
                    f"method='ibp'")
            if op.kind in ("kink", "relaxed"):
                self.relax[i] = op.relaxation(*self.bounds[op.node.inputs[0]])
            # IBP from the (tightened) inputs, intersected with plain IBP
            l, u = op.interval([self.bounds[v] for v in op.node.inputs])
            pl, pu = ibp[op.node.output]
            l, u = torch.maximum(l, pl), torch.minimum(u, pu)
            self.bounds[op.node.output] = self._refine(op.node.output, l, u)

    def _refine(self, value: str, l: Tensor, u: Tensor) -> Interval:
        """Tighten the bounds of a value read by a nonlinear node with CROWN, on the neurons
        where it matters (unstable ReLU terms for any centre; all for the other nonlinear
        nodes); with alpha_steps, by alpha-CROWN."""
        users = [self.comp.ops[i] for i in self.comp.consumers.get(value, ())]
        users = [op for op in users if op.kind != "linear"]
        if not users:
            return l, u
        if any(op.kind != "kink" for op in users):
            mask = (l < u).reshape(self.B, -1)
        else:
            mask = torch.zeros((self.B, l[0].numel()), dtype=torch.bool, device=l.device)
            for op in users:
                mask |= op.unstable(l, u).reshape(self.B, -1)
        # rows for the neurons some centre needs; each centre takes only its own, so a
        # centre's bounds do not depend on the other centres of the batch
        rows = mask.any(0).nonzero().squeeze(-1)
        if rows.numel() == 0:
            return l, u
        l, u = l.reshape(self.B, -1).clone(), u.reshape(self.B, -1).clone()
        N, shape = l.shape[1], self.comp.shapes[value]
        step = max(1, self.chunk // (2 * self.B * self.comp.max_size))
        for start in range(0, rows.numel(), step):
            idx = rows[start:start + step]
            k = idx.numel()
            # one-hot rows +e_i (lower bounds) and -e_i (minus upper bounds), shared by the
            # batch (batch axis 1: linear nodes keep it so until the first relaxation)
            A = torch.zeros((1, 2 * k, N), dtype=DTYPE, device=l.device)
            ar = torch.arange(k, device=l.device)
            A[0, ar, idx], A[0, k + ar, idx] = 1.0, -1.0
            zero = torch.zeros((1, 2 * k), dtype=DTYPE, device=l.device)
            A = A.reshape(1, 2 * k, *shape)
            if self.alpha_steps > 0:
                lower = self.lower(value, A, zero, alpha=True, steps=self.alpha_steps,
                                   lr=self.alpha_lr)
            else:
                lower = self.backward(value, A, zero)
            use = mask[:, idx]
            l[:, idx] = torch.where(use, torch.maximum(l[:, idx], _down(lower[:, :k])), l[:, idx])
            u[:, idx] = torch.where(use, torch.minimum(u[:, idx], _up(-lower[:, k:])), u[:, idx])
        return l.reshape(self.B, *shape), u.reshape(self.B, *shape)

    def backward(self, value: str, A: Tensor, c: Tensor,
                 alphas: dict[int, list[Tensor | None]] | None = None,
                 betas: dict[int, Tensor] | None = None, keep: dict | None = None) -> Tensor:
        """A lower bound (B, K) of A · value + c over the input set (before the safety margin):
        coefficients flow backwards node by node, summed where a value has several readers.

        `betas` (branch and bound, Wang et al. 2021): per ReLU node, a term added to the
        coefficient of its pre-activation z (the Lagrangian beta s z of a split constraint
        s z <= 0, which only lowers the bound on the subdomain). `keep`, when given, receives
        the coefficient of each kink node's output (by node index) and of the input ("input")."""
        comp = self.comp
        coef = {value: A}
        for i in reversed([j for j in comp.live if j <= comp.producer.get(value, -1)]):
            op = comp.ops[i]
            A = coef.pop(op.node.output, None)
            if A is None:
                continue
            if op.kind == "linear":
                extra = op.const(A)
                if extra is not None:
                    c = c + extra
                ins = op.back(A)
            elif op.kind == "kink":
                if keep is not None:
                    keep[i] = A
                Az, extra = op.back_relaxed(A, self.relax[i], None if alphas is None
                                            else alphas.get(i))
                if betas is not None and i in betas:
                    Az = Az + betas[i]
                c, ins = c + extra, [Az]
            else:  # relaxed: a lower and an upper linear bound (Sigmoid, Tanh, MaxPool)
                Az, extra = op.back_relaxed(A, self.relax[i])
                c, ins = c + extra, [Az]
            for v, Av in zip(op.node.inputs, ins):
                coef[v] = coef[v] + Av if v in coef else Av
        if keep is not None:
            keep["input"] = coef.get(comp.input_name)
        return self.region.concretise(coef.pop(comp.input_name, None), c)

    def alphas_for(self, K: int) -> dict[int, list[Tensor | None]]:
        """Free lower slopes (B, K, *shape) per ReLU term with unstable neurons, started at
        CROWN's heuristic (one set per specification row, as in Xu et al. 2021)."""
        out = {}
        for i, relax in self.relax.items():
            if self.comp.ops[i].kind != "kink":
                continue
            out[i] = [alpha.unsqueeze(1).expand(self.B, K, *alpha.shape[1:]).clone()
                      .requires_grad_(True) if bool(unstable.any()) else None
                      for _, _, alpha, unstable in relax]
        return out

    def lower(self, value: str, A: Tensor, c: Tensor, *, alpha: bool, steps: int,
              lr: float) -> Tensor:
        """CROWN's lower bound of A · value + c (A: (B or 1, K, *shape)); with `alpha`,
        alpha-CROWN (Xu et al. 2021): Adam ascent on the lower slopes, projected onto [0, 1]
        (every slope there is a valid lower relaxation), keeping per row the best bound."""
        K = A.shape[1]
        step = max(1, self.chunk // (self.B * self.comp.max_size))
        parts = []
        for start in range(0, K, step):
            Ak, ck = A[:, start:start + step], c[:, start:start + step]
            with torch.no_grad():
                best = self.backward(value, Ak, ck)
            if alpha and steps > 0 and self.relax:
                alphas = self.alphas_for(Ak.shape[1])
                params = [a for group in alphas.values() for a in group if a is not None]
                if not params:
                    parts.append(best)
                    continue
                # Adam by hand (torch.optim imports torch._dynamo: seconds per process); rows
                # are independent, so ascending their sum ascends each row's bound
                moments = [(torch.zeros_like(a), torch.zeros_like(a)) for a in params]
                for it in range(steps + 1):
                    with torch.enable_grad():
                        bound = self.backward(value, Ak, ck, alphas)
                        best = torch.maximum(best, bound.detach())
                        if it == steps:
                            break
                        grads = torch.autograd.grad(bound.sum(), params, allow_unused=True)
                    adam_ascent(params, grads, moments, it, lr)
                    with torch.no_grad():
                        for a in params:
                            a.clamp_(0.0, 1.0)  # every slope in [0, 1] is a valid relaxation
            parts.append(best.detach())
        return torch.cat(parts, 1)


def adam_ascent(params: list[Tensor], grads, moments: list[tuple[Tensor, Tensor]], it: int,
                lr: float) -> None:
    """One Adam step of gradient *ascent* on `params` in place (Kingma & Ba 2015; written
    out because importing torch.optim costs seconds per process through torch._dynamo).
    `moments` holds each parameter's (first, second) moment; `it` counts from 0; parameters
    without a gradient are left alone. The caller projects onto the feasible set."""
    with torch.no_grad():
        for p, g, (m1, m2) in zip(params, grads, moments):
            if g is None:
                continue
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            hat1, hat2 = m1 / (1 - 0.9 ** (it + 1)), m2 / (1 - 0.999 ** (it + 1))
            p.add_(lr * hat1 / (hat2.sqrt() + 1e-8))


# --- the API -------------------------------------------------------------------------------

def unsupported(net: Network, method: str) -> tuple[str, ...]:
    """The nodes (as "Kind 'name'") `method` cannot bound: for the CROWN methods Softmax,
    which they refuse (no linear relaxation); for every method the nodes no method bounds
    (LogSoftmax), on which bounds raise NotImplementedError."""
    method = _method(method)
    unknown = tuple(f"{type(n).__name__} '{n.name}'" for n in net.nodes if type(n) not in _OPS)
    if unknown:  # no bounds at all (e.g. LogSoftmax): output_bounds raises NotImplementedError
        return unknown
    if method == "ibp":
        return ()
    comp = _compiled(net, torch.device("cpu"))
    return tuple(f"{type(net.nodes[i]).__name__} '{net.nodes[i].name}'" for i in comp.live
                 if isinstance(net.nodes[i], Softmax))


def supports(net: Network, method: str) -> bool:
    """Whether `method` bounds every node of the network (IBP always does on the IR's nodes
    but LogSoftmax; the CROWN methods also reject Softmax)."""
    return not unsupported(net, method)


def _method(method: str) -> str:
    m = str(method).lower().replace("_", "-")
    if m not in METHODS:
        raise ValueError(f"unknown bound method {method!r}; expected one of {', '.join(METHODS)}")
    return m


def spec_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor, *,
                p: float, low, high, C: np.ndarray | Tensor,
                d: np.ndarray | Tensor | None = None, method: str = "crown",
                alpha_steps: int = 20, alpha_lr: float = 0.1, strict: bool = False,
                chunk_elements: int = 1 << 22) -> Tensor:
    """Sound lower bounds (B, K) of C f(x) + d over B_p(centre, eps) ∩ [low, high]^n, per
    centre and row: C is (B, K, m) or (K, m), d (B, K), (K,) or None.

    `method` is "ibp", "crown", "alpha-crown" or "alpha-crown-all" (each never looser than
    the previous); `alpha_steps` and `alpha_lr` are the optimisation's, for the final rows and
    (alpha-crown-all) for every intermediate bound. With `strict`, the CROWN methods raise
    NotImplementedError on nodes they cannot relax (see `unsupported`; Softmax raises without
    it too). `chunk_elements` caps the size of the coefficient tensors."""
    method = _method(method)
    if method != "ibp" and strict and unsupported(net, method):
        raise NotImplementedError(f"{net.source}: {method} has no linear relaxation of "
                                  f"{', '.join(unsupported(net, method))}")
    region = _region(net, centres, eps, p, low, high)
    B, m, device = region.x0.shape[0], net.output_size, region.x0.device
    C = torch.as_tensor(C, dtype=DTYPE, device=device).detach()
    if C.dim() == 2:
        C = C.unsqueeze(0)
    if C.dim() != 3 or C.shape[0] not in (1, B) or C.shape[2] != m:
        raise ValueError(f"C must be (B, K, m) or (K, m) with B = {B}, m = {m}; got "
                         f"{tuple(C.shape)}")
    K = C.shape[1]
    d = torch.zeros(K, dtype=DTYPE, device=device) if d is None else \
        torch.as_tensor(d, dtype=DTYPE, device=device).detach()
    d = d.expand(B, K) if d.shape in ((K,), (1, K), (B, K)) else None
    if d is None:
        raise ValueError(f"d must be (B, K) or (K,) with B = {B}, K = {K}")
    comp = _compiled(net, device)
    # batches small enough that a few rows of coefficients fit in chunk_elements
    size = max(1, chunk_elements // (16 * comp.max_size))
    parts = []
    for start in range(0, B, size):
        rows = slice(start, start + size)
        part = region.part(rows)
        Cb = C if C.shape[0] == 1 else C[rows]
        parts.append(_spec_lower(comp, part, Cb, d[rows], method, alpha_steps, alpha_lr,
                                 chunk_elements))
    return torch.cat(parts, 0)


def _spec_lower(comp: _Compiled, region: _Region, C: Tensor, d: Tensor, method: str,
                steps: int, lr: float, chunk: int) -> Tensor:
    """spec_bounds on one batch."""
    B, out = region.x0.shape[0], comp.output_name
    with torch.no_grad():
        ibp = _ibp(comp, region)
        if method == "ibp":
            l, u = (x.reshape(B, -1) for x in ibp[out])
            return _down(_interval_spec(C, l, u) + d)
        crown = _Crown(comp, region, ibp, chunk)
    A = C.reshape(C.shape[0], C.shape[1], *comp.output_shape)
    lower = crown.lower(out, A, d, alpha=method != "crown", steps=steps, lr=lr)
    if method == "alpha-crown-all" and steps > 0:
        # intermediate bounds by alpha-CROWN too, each intersected with CROWN's; the final
        # bound is the better of the two passes, so never looser than alpha-crown's
        with torch.no_grad():
            crown = _Crown(comp, region, crown.bounds, chunk, alpha_steps=steps, alpha_lr=lr)
        lower = torch.maximum(lower, crown.lower(out, A, d, alpha=True, steps=steps, lr=lr))
    with torch.no_grad():
        l, u = (x.reshape(B, -1) for x in crown.bounds[out])
        interval = _interval_spec(C, l, u) + d
    # never looser than the interval bound of the (tightened) output
    return _down(torch.maximum(lower, interval))


def _relaxations(comp: _Compiled, bounds: dict[str, Interval]) -> dict[int, object]:
    """The relaxation of every live nonlinear node (kink or relaxed) from its input bounds,
    as `_Crown.relax` holds them (for a `_Crown` built on given bounds, e.g. by branch and
    bound)."""
    return {i: comp.ops[i].relaxation(*bounds[comp.ops[i].node.inputs[0]])
            for i in comp.live if comp.ops[i].kind in ("kink", "relaxed")}


def _interval_spec(C: Tensor, l: Tensor, u: Tensor) -> Tensor:
    """IBP's lower bound of C z over l <= z <= u: (B, K)."""
    Cp, Cn = _pos_neg(C)
    return (Cp @ l.unsqueeze(-1) + Cn @ u.unsqueeze(-1)).squeeze(-1)


def output_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor,
                  *, p: float, low, high, method: str = "crown",
                  alpha_steps: int = 20, alpha_lr: float = 0.1, strict: bool = False,
                  chunk_elements: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """Sound (lower, upper) bounds, each (B, m), of the outputs over
    B_p(centre, eps) ∩ [low, high]^n: spec_bounds with the rows +e_i and -e_i."""
    method = _method(method)
    m = net.output_size
    region = _region(net, centres, eps, p, low, high)
    with torch.no_grad():
        l, u = _ibp(_compiled(net, region.x0.device), region)[net.output_name]
    l, u = l.reshape(-1, m), u.reshape(-1, m)
    if method == "ibp":
        return l, u
    eye = torch.eye(m, dtype=DTYPE)
    both = spec_bounds(net, centres, eps, p=p, low=low, high=high, C=torch.cat([eye, -eye]),
                       method=method, alpha_steps=alpha_steps, alpha_lr=alpha_lr, strict=strict,
                       chunk_elements=chunk_elements)
    # intersected with IBP's own interval, so never looser than it (not even by the margin)
    return torch.maximum(both[:, :m], l), torch.minimum(-both[:, m:], u)
