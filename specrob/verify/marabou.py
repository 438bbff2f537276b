"""The Marabou back end: one query per centre, encoded from specrob's network IR (not Marabou's
ONNX parser, which lacks Clip, variable-minus-variable Sub and Div) straight into a
`MarabouCore.InputQuery`. Marabou looks for an x in the input set whose output z = f(x)
violates the body; "unsat" proves the body on the whole set.

Soundness of "unsat" rests on the encoding describing a superset of the real counterexamples:
every node is encoded exactly (piecewise-linear constraints, exact linear equations in float64),
interval bounds given to Marabou are outer bounds (widened against rounding), an l_2 ball is
relaxed to its enclosing box, and strict comparisons of the negated body are encoded
non-strictly. A "sat" answer is only a candidate: the caller re-checks it (a tie, a point of the
box outside the l_2 ball, or Marabou's own tolerances, about 1e-6 on a constraint, can make it
spurious).

By default Marabou runs in a worker process, reused across queries and killed when a query
overruns: maraboupy 2.0 can run past its own timeout without end and segfaults on some inputs.
"""
from __future__ import annotations

import atexit
import inspect
import itertools
import math
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, LogSoftmax, MaxPool, Network, Node, Relu, Reshape,
                                Sigmoid, Softmax, Tanh)
from specrob.lang import query as q

__all__ = ["STATUSES", "MarabouResult", "solve_query", "supports"]

STATUSES = ("unsat", "sat", "timeout", "error")
# Marabou's exit strings (maraboupy 2.0, MarabouCore.solve) -> ours; anything else is "error"
_EXIT = {"unsat": "unsat", "sat": "sat", "TIMEOUT": "timeout"}
# rounding slack on the interval bounds handed to Marabou: relative to the terms' magnitude
_SLACK = 1e-9
# The largest magnitude (variable bound, coefficient, constant) at which one Marabou UNSAT is
# taken as it is. Marabou works in doubles with absolute tolerances (its bound tolerance is set
# to 1e-10 below); rounding errors grow with the magnitudes (about M * 1e-16 per operation), and
# on ReLU MLPs whose values reach 1e7-1e8 its bound tightening answered UNSAT for queries with a
# witness (Marabou issue #485; shared case 22). Above this magnitude an UNSAT counts only when a
# second configuration (no bound tightening) agrees.
SAFE_MAGNITUDE = 1e4
# the configuration that must confirm an UNSAT above SAFE_MAGNITUDE
_SECOND_OPINION = "none"
_NOT_PIECEWISE_LINEAR = (Sigmoid, Tanh, Softmax, LogSoftmax)
_ENCODED = (Affine, Elementwise, Add, Conv, BatchNorm, Relu, LeakyRelu, Clip, Reshape, MaxPool,
            AveragePool)


@dataclass(frozen=True, eq=False)
class MarabouResult:
    """Marabou's answer to one query: status in STATUSES, and for "sat" the input x (shape (n,),
    projected onto the region's box) with Marabou's outputs z; `relaxed_region` when an l_2 ball
    was searched as its box, `relaxed_strict` when a strict comparison was made non-strict."""

    status: str
    counterexample: np.ndarray | None = None
    outputs: np.ndarray | None = None
    seconds: float = 0.0
    message: str = ""
    relaxed_region: bool = False
    relaxed_strict: bool = False


class _Unsupported(Exception):
    """A network or query the back end cannot encode exactly: the reason."""


def supports(net: Network) -> str | None:
    """None when every node of the network can be encoded exactly, else the first reason."""
    for node in net.nodes:
        if not isinstance(node, _ENCODED):
            return _reason(node)
    return None


def _reason(node: Node) -> str:
    """Why a node cannot be encoded."""
    if isinstance(node, _NOT_PIECEWISE_LINEAR):
        return f"{type(node).__name__} node '{node.name}' is not piecewise linear"
    return f"{type(node).__name__} node '{node.name}' is not supported by the Marabou back end"


# --- the encoding, collected in Python first ----------------------------------------------

class _Encoding:
    """Marabou variables with interval bounds and constraints, kept in Python until one
    InputQuery is built (addClipConstraint allocates its auxiliaries at once, so every variable
    of ours must exist before it is called)."""

    def __init__(self) -> None:
        self._lo, self._hi, self._size = np.zeros(256), np.zeros(256), 0
        self.fixed: dict[int, float] = {}  # variables that are constants (lo == hi exactly)
        self.equations: list[tuple[str, list[int], list[float], float]] = []
        self.relus: list[tuple[int, int]] = []
        self.leaky: list[tuple[int, int, float]] = []
        self.clips: list[tuple[int, int, float, float]] = []
        self.abses: list[tuple[int, int]] = []
        self.disjunctions: list[list[list[tuple[str, list[int], list[float], float]]]] = []
        self._constants: dict[float, int] = {}

    @property
    def size(self) -> int:
        return self._size

    @property
    def lo(self) -> np.ndarray:
        """Lower bounds of the variables so far (a view: read it, do not keep it)."""
        return self._lo[:self._size]

    @property
    def hi(self) -> np.ndarray:
        return self._hi[:self._size]

    def new(self, lo, hi) -> np.ndarray:
        """Fresh variables with the given (outer) bounds."""
        lo, hi = np.asarray(lo, float).reshape(-1), np.asarray(hi, float).reshape(-1)
        start, end = self._size, self._size + len(lo)
        if end > len(self._lo):  # grow geometrically: many single variables are added
            grow = max(end, 2 * len(self._lo))
            self._lo = np.concatenate([self._lo, np.zeros(grow - len(self._lo))])
            self._hi = np.concatenate([self._hi, np.zeros(grow - len(self._hi))])
        self._lo[start:end], self._hi[start:end] = lo, hi
        self._size = end
        return np.arange(start, end)

    def constant(self, value: float) -> int:
        """A variable fixed to `value` by its bounds (shared between uses)."""
        value = float(value) + 0.0  # one variable for 0.0 and -0.0
        if value not in self._constants:
            var = int(self.new([value], [value])[0])
            self._constants[value] = var
            self.fixed[var] = value
        return self._constants[value]

    def linear(self, rows: np.ndarray, cols: np.ndarray, coefs: np.ndarray,
               const: np.ndarray) -> np.ndarray:
        """Variables y_r = sum_k coefs_k x_{cols_k} (over k with rows_k = r) + const_r, one per
        entry of const: a row that is a bare variable reuses it, a row without terms is a
        constant, every other row a fresh variable with its interval bounds and one equation."""
        const = np.asarray(const, float).ravel()
        k = len(const)
        rows, cols, coefs = (np.asarray(a).ravel() for a in (rows, cols, coefs))
        rows, cols, coefs = _merged(rows.astype(np.int64), cols.astype(np.int64),
                                    coefs.astype(float))
        # fold constant inputs into the constant term
        if self.fixed:
            is_fixed = np.isin(cols, np.fromiter(self.fixed, np.int64, len(self.fixed)))
            if is_fixed.any():
                values = np.array([self.fixed[c] for c in cols[is_fixed].tolist()])
                const = const + np.bincount(rows[is_fixed], coefs[is_fixed] * values,
                                            minlength=k)
                rows, cols, coefs = rows[~is_fixed], cols[~is_fixed], coefs[~is_fixed]
        # interval bounds, widened by the rounding error of evaluating the row in float64
        lo_in, hi_in = self.lo[cols], self.hi[cols]
        lo = const + np.bincount(rows, np.where(coefs > 0, coefs * lo_in, coefs * hi_in), k)
        hi = const + np.bincount(rows, np.where(coefs > 0, coefs * hi_in, coefs * lo_in), k)
        size = np.abs(const) + np.bincount(rows, np.abs(coefs) * np.maximum(np.abs(lo_in),
                                                                           np.abs(hi_in)), k)
        lo, hi = lo - _SLACK * (1 + size), hi + _SLACK * (1 + size)
        counts = np.bincount(rows, minlength=k)
        starts = np.concatenate([[0], np.cumsum(counts)])
        first = np.minimum(starts[:-1], max(len(cols) - 1, 0))
        empty = counts == 0
        alias = (counts == 1) & (const == 0.0)
        if len(cols):
            alias &= coefs[first] == 1.0
        fresh = ~empty & ~alias
        out = np.empty(k, np.int64)
        out[alias] = cols[first[alias]]
        for r in np.flatnonzero(empty).tolist():
            out[r] = self.constant(const[r])
        ids = self.new(lo[fresh], hi[fresh])
        out[fresh] = ids
        cols_, coefs_, starts_, const_ = cols.tolist(), coefs.tolist(), starts.tolist(), \
            const.tolist()
        for r, y in zip(np.flatnonzero(fresh).tolist(), ids.tolist()):
            a, b = starts_[r], starts_[r + 1]
            # sum coefs x - y = -const
            self.equations.append(("EQ", cols_[a:b] + [y], coefs_[a:b] + [-1.0], -const_[r]))
        return out

    def dense(self, weight: np.ndarray, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
        """y = weight @ x + bias for a vector of variables x."""
        out, inp = weight.shape
        rows = np.repeat(np.arange(out), inp)
        cols = np.tile(x, out)
        return self.linear(rows, cols, weight.ravel(), bias)

    def relu(self, x: np.ndarray) -> np.ndarray:
        """y = max(x, 0); neurons stable on the interval bounds need no constraint."""
        lo, hi = self.lo[x], self.hi[x]
        out = x.copy()
        dead = hi <= 0
        if dead.any():
            out[dead] = self.constant(0.0)
        unstable = (lo < 0) & ~dead
        ids = self.new(np.zeros(int(unstable.sum())), hi[unstable])
        out[unstable] = ids
        self.relus += zip(x[unstable].tolist(), ids.tolist())
        return out

    def leaky_relu(self, x: np.ndarray, alpha: float) -> np.ndarray:
        """y = x if x >= 0 else alpha x: Marabou's LeakyReLU for 0 < alpha < 1, otherwise the
        exact identity y = alpha x + (1 - alpha) relu(x) (both branches check out)."""
        if alpha == 0.0:
            return self.relu(x)
        if alpha == 1.0:
            return x
        out = np.empty_like(x)
        for i, v in enumerate(x.tolist()):
            lo, hi = self.lo[v], self.hi[v]
            if lo >= 0:
                out[i] = v
            elif hi <= 0:
                out[i] = self.linear(np.array([0]), np.array([v]), np.array([alpha]),
                                     np.zeros(1))[0]
            elif 0.0 < alpha < 1.0:
                y = int(self.new([alpha * lo], [hi])[0])
                self.leaky.append((v, y, alpha))
                out[i] = y
            else:
                r = self.relu(np.array([v]))[0]
                out[i] = self.linear(np.array([0, 0]), np.array([v, r]),
                                     np.array([alpha, 1.0 - alpha]), np.zeros(1))[0]
        return out

    def clip(self, x: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
        """y = min(max(x, low), high). Where one side never binds on the interval bounds it is
        replaced by a bound beyond them, which is exact since x never reaches it."""
        floor = -math.inf if low is None else float(low)
        ceiling = math.inf if high is None else float(high)
        if floor >= ceiling:  # min(max(x, low), high) = high everywhere
            return np.full_like(x, self.constant(ceiling))
        out = np.empty_like(x)
        for i, v in enumerate(x.tolist()):
            lo, hi = self.lo[v], self.hi[v]
            if hi <= floor:
                out[i] = self.constant(floor)
            elif lo >= ceiling:
                out[i] = self.constant(ceiling)
            elif floor <= lo and hi <= ceiling:
                out[i] = v
            else:
                f = floor if floor > lo else lo - 1.0
                c = ceiling if ceiling < hi else hi + 1.0
                y = int(self.new([max(lo, floor)], [min(hi, ceiling)])[0])
                self.clips.append((v, y, f, c))
                out[i] = y
        return out

    def maximum(self, elements: list[int]) -> int:
        """y = max(elements) as a pairwise tree of max(a, b) = b + relu(a - b), exact. Not
        Marabou's Max constraint: its DeepPoly pass segfaults (maraboupy 2.0) when the elements
        sit at different depths of the network (e.g. a ReLU output and a pre-activation), which
        our stable-neuron aliases and norms over outputs and inputs produce. Elements that can
        never win on the interval bounds are dropped first (exact)."""
        elements = sorted(set(elements))
        best_lo = max(self.lo[e] for e in elements)
        level = [e for e in elements if self.hi[e] >= best_lo]
        while len(level) > 1:
            pairs = [level[i:i + 2] for i in range(0, len(level), 2)]
            level = [p[0] if len(p) == 1 else self._max2(*p) for p in pairs]
        return level[0]

    def _max2(self, a: int, b: int) -> int:
        """max(a, b) = b + relu(a - b); its bounds are those of the max (a sound intersection)."""
        lo, hi = max(self.lo[a], self.lo[b]), max(self.hi[a], self.hi[b])
        if self.lo[a] >= self.hi[b]:
            return a
        if self.lo[b] >= self.hi[a]:
            return b
        d = self.linear(np.array([0, 0]), np.array([a, b]), np.array([1.0, -1.0]), np.zeros(1))
        r = self.relu(d)[0]
        y = int(self.linear(np.array([0, 0]), np.array([b, r]), np.ones(2), np.zeros(1))[0])
        self._lo[y], self._hi[y] = max(self._lo[y], lo), min(self._hi[y], hi)
        return y

    def absolute(self, v: int) -> int:
        """a = |v|."""
        lo, hi = self.lo[v], self.hi[v]
        if v in self.fixed:
            return self.constant(abs(self.fixed[v]))
        if lo >= 0:
            return v
        if hi <= 0:
            return int(self.linear(np.array([0]), np.array([v]), np.array([-1.0]),
                                   np.zeros(1))[0])
        a = int(self.new([0.0], [max(-lo, hi)])[0])
        self.abses.append((v, a))
        return a


def _merged(rows: np.ndarray, cols: np.ndarray,
            coefs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse terms sorted by (row, column), repeated pairs summed, zero coefficients dropped."""
    order = np.lexsort((cols, rows))
    rows, cols, coefs = rows[order], cols[order], coefs[order]
    if len(rows) > 1:
        first = np.concatenate([[True], (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])])
        if not first.all():
            starts = np.flatnonzero(first)
            coefs = np.add.reduceat(coefs, starts)
            rows, cols = rows[starts], cols[starts]
    keep = coefs != 0
    return rows[keep], cols[keep], coefs[keep]


# --- the network ---------------------------------------------------------------------------

def _windows(in_shape: tuple[int, ...], out_shape: tuple[int, ...], kernel: tuple[int, int],
             strides: tuple[int, int], pads: tuple[int, int, int, int],
             dilations: tuple[int, int]):
    """For 2-D pooling / convolution windows: per (out channel-free position, kernel offset),
    the flat output position (oh, ow), the kernel index (i, j), the input (ih, iw) and whether
    it lies inside the input (not in the padding)."""
    _, H, W = in_shape
    _, Ho, Wo = out_shape
    oh, ow, i, j = np.meshgrid(np.arange(Ho), np.arange(Wo), np.arange(kernel[0]),
                               np.arange(kernel[1]), indexing="ij")
    ih = oh * strides[0] - pads[0] + i * dilations[0]
    iw = ow * strides[1] - pads[1] + j * dilations[1]
    inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    return oh.ravel(), ow.ravel(), i.ravel(), j.ravel(), ih.ravel(), iw.ravel(), inside.ravel()


def _encode_node(enc: _Encoding, node: Node, args: list[np.ndarray],
                 shapes: list[tuple[int, ...]]) -> np.ndarray:
    """The variables (an array of the node's per-sample shape) of one node's output."""
    x, shape = args[0], tuple(node.shape)
    if isinstance(node, Reshape):
        return x.reshape(shape)
    if isinstance(node, Affine):
        lead = x.reshape(-1, node.in_features)
        return np.stack([enc.dense(node.weight, row, node.bias) for row in lead]).reshape(shape)
    if isinstance(node, (Elementwise, BatchNorm)):
        if isinstance(node, BatchNorm):
            a, b = node.scale_shift()
            a = np.broadcast_to(a.reshape(-1, *[1] * (len(shape) - 1)), shape)
            b = np.broadcast_to(b.reshape(-1, *[1] * (len(shape) - 1)), shape)
        else:
            a, b = np.broadcast_to(node.scale, shape), np.broadcast_to(node.shift, shape)
        size = math.prod(shape)
        return enc.linear(np.arange(size), x.ravel(), a.ravel(), b.ravel()).reshape(shape)
    if isinstance(node, Add):
        size = math.prod(shape)
        sign = -1.0 if node.subtract else 1.0
        rows = np.concatenate([np.arange(size), np.arange(size)])
        cols = np.concatenate([x.ravel(), args[1].ravel()])
        coefs = np.concatenate([np.ones(size), np.full(size, sign)])
        return enc.linear(rows, cols, coefs, np.zeros(size)).reshape(shape)
    if isinstance(node, Relu):
        return enc.relu(x.ravel()).reshape(shape)
    if isinstance(node, LeakyRelu):
        return enc.leaky_relu(x.ravel(), float(node.alpha)).reshape(shape)
    if isinstance(node, Clip):
        return enc.clip(x.ravel(), node.low, node.high).reshape(shape)
    if isinstance(node, Conv):
        return _conv(enc, node, x, shapes[0])
    if isinstance(node, AveragePool):
        return _average_pool(enc, node, x, shapes[0])
    if isinstance(node, MaxPool):
        return _max_pool(enc, node, x, shapes[0])
    raise _Unsupported(_reason(node))


def _conv(enc: _Encoding, node: Conv, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """A convolution as sparse linear equations, one per output pixel (zero padding adds no
    term)."""
    _, H, W = in_shape
    Co, Ho, Wo = node.shape
    c_in = node.weight.shape[1]
    c_out = Co // node.group
    oh, ow, i, j, ih, iw, inside = _windows(in_shape, node.shape, node.weight.shape[2:],
                                            node.strides, node.pads, node.dilations)
    oh, ow, i, j, ih, iw = (a[inside] for a in (oh, ow, i, j, ih, iw))
    co, cl = np.meshgrid(np.arange(Co), np.arange(c_in), indexing="ij")
    co, cl = co.ravel()[:, None], cl.ravel()[:, None]
    ci = (co // c_out) * c_in + cl
    rows = (co * Ho + oh) * Wo + ow
    cols = x.ravel()[(ci * H + ih) * W + iw]
    coefs = node.weight[co, cl, i, j]
    const = np.repeat(node.bias, Ho * Wo)
    return enc.linear(rows.ravel(), cols.ravel(), coefs.ravel(), const).reshape(node.shape)


def _average_pool(enc: _Encoding, node: AveragePool, x: np.ndarray,
                  in_shape: tuple[int, ...]) -> np.ndarray:
    """The mean of each window: over the whole window with count_include_pad (padding adds
    zeros), else over its pixels inside the input (as the torch executor computes it)."""
    C, H, W = in_shape
    _, Ho, Wo = node.shape
    oh, ow, _, _, ih, iw, inside = _windows(in_shape, node.shape, node.kernel, node.strides,
                                            node.pads, (1, 1))
    position = oh * Wo + ow
    if node.count_include_pad:
        count = np.full(Ho * Wo, float(node.kernel[0] * node.kernel[1]))
    else:
        count = np.bincount(position[inside], minlength=Ho * Wo).astype(float)
    position, ih, iw = position[inside], ih[inside], iw[inside]
    c = np.arange(C)[:, None]
    rows = c * Ho * Wo + position
    cols = x.ravel()[(c * H + ih) * W + iw]
    coefs = np.broadcast_to(1.0 / count[position], rows.shape)
    return enc.linear(rows.ravel(), cols.ravel(), coefs.ravel(),
                      np.zeros(C * Ho * Wo)).reshape(node.shape)


def _max_pool(enc: _Encoding, node: MaxPool, x: np.ndarray,
              in_shape: tuple[int, ...]) -> np.ndarray:
    """The max of each window's pixels inside the input (padding is -inf and never wins)."""
    C, H, W = in_shape
    _, Ho, Wo = node.shape
    oh, ow, _, _, ih, iw, inside = _windows(in_shape, node.shape, node.kernel, node.strides,
                                            node.pads, node.dilations)
    position = (oh * Wo + ow)[inside]
    flat_in = (ih * W + iw)[inside]
    xs = x.reshape(C, H * W)
    out = np.empty((C, Ho * Wo), np.int64)
    for p in range(Ho * Wo):
        pixels = flat_in[position == p]
        for c in range(C):
            out[c, p] = enc.maximum(xs[c, pixels].tolist())
    return out.reshape(node.shape)


def _encode_network(enc: _Encoding, net: Network, x: np.ndarray) -> np.ndarray:
    """The output variables (flat, length m) of the network on the input variables x."""
    values = {net.input_name: x.reshape(net.input_shape)}
    for node in net.nodes:
        args = [values[v] for v in node.inputs]
        values[node.output] = _encode_node(enc, node, args,
                                           [net.shape_of(v) for v in node.inputs])
    return values[net.output_name].ravel()


# --- the region and the negated body -------------------------------------------------------

def _encode_region(enc: _Encoding, region: q.InputRegion) -> np.ndarray:
    """Input variables bounded by the region's box; for p = 1 the ball exactly (d = x - c,
    a = |d|, sum a <= eps); any other p (l_2) is relaxed to the box (the ball lies inside it,
    so "unsat" stays sound)."""
    low, high = region.box_low, region.box_high
    x = enc.new(low, high)
    if region.p != 1 or math.isinf(region.eps):
        return x
    c = np.asarray(region.centre, float)
    # the ball already contains the box when even its far corner is within eps
    if np.maximum(np.abs(low - c), np.abs(high - c)).sum() <= region.eps:
        return x
    n = len(c)
    d = enc.linear(np.arange(n), x, np.ones(n), -c)
    a = [enc.absolute(int(v)) for v in d]
    terms = [v for v in a if v not in enc.fixed]
    rest = float(region.eps) - sum(enc.fixed[v] for v in a if v in enc.fixed)
    if terms:
        enc.equations.append(("LE", terms, [1.0] * len(terms), rest))
    return x


_Literal = tuple[str, list[int], list[float], float]  # sum coefs * vars (EQ|LE|GE) scalar


def _norm_terms(enc: _Encoding, term: q.NormTerm, z: np.ndarray, x: np.ndarray,
                upper: bool) -> list[tuple[float, int]]:
    """weight * ||vec||_p as (coefficient, variable) addends. Exactly: a_l = |v_l| per row,
    then t = max_l a_l for p = inf, or the sum of the a_l for p = 1. With `upper` (the literal
    only gets harder as the norm grows, and nothing else reads these variables) the epigraph
    t >= |v_l| (two linear inequalities per row) is enough: any solution stays one with t
    lowered to the norm, so the relaxation is exact and needs no case split."""
    if term.p not in (1, math.inf):
        raise _Unsupported(f"a norm term with p = {term.p:g} is not piecewise linear")
    vec = term.vec
    rows_n = vec.rows
    if rows_n == 0 or term.weight == 0:  # the norm of an empty vector is 0
        return []
    m, n = len(z), len(x)
    rows = np.repeat(np.arange(rows_n), m + n)
    cols = np.tile(np.concatenate([z, x]), rows_n)
    coefs = np.concatenate([np.asarray(vec.out, float), np.asarray(vec.inp, float)],
                           axis=1).ravel()
    v = enc.linear(rows, cols, coefs, np.asarray(vec.const, float)).tolist()
    w = float(term.weight)
    if not upper:
        a = [enc.absolute(i) for i in v]
        return [(w, i) for i in a] if term.p == 1 else [(w, enc.maximum(a))]
    lo, hi = enc.lo[v], enc.hi[v]
    least = np.where((lo < 0) & (hi > 0), 0.0, np.minimum(np.abs(lo), np.abs(hi)))
    most = np.maximum(np.abs(lo), np.abs(hi))
    groups = [[i] for i in range(len(v))] if term.p == 1 else [list(range(len(v)))]
    out = []
    for group in groups:
        t = int(enc.new([least[group].max()], [most[group].max()])[0])
        for i in group:
            if v[i] not in enc.fixed:
                enc.equations.append(("GE", [t, v[i]], [1.0, -1.0], 0.0))
                enc.equations.append(("GE", [t, v[i]], [1.0, 1.0], 0.0))
        out.append((w, t))
    return out


class _Body:
    """Compiles the negated body into literals over the encoding's variables. Strict `<`/`>`
    become `<= -margin`/`>= margin`: with margin 0 (the default) a superset of the real
    violations, so "unsat" stays sound, and `!=` (`< 0 or > 0`) becomes true; a positive margin
    is the caller's choice to ignore violations smaller than it."""

    def __init__(self, enc: _Encoding, z: np.ndarray, x: np.ndarray, margin: float):
        self.enc, self.z, self.x, self.margin = enc, z, x, float(margin)
        self.relaxed = False  # a strict comparison was made non-strict

    def atom(self, atom: q.Atom):
        """An atom as a compiled formula (see `compile`); its truth value when it has no
        variable terms (decided exactly, strict or not)."""
        lin = atom.lin
        coefs = np.concatenate([np.asarray(lin.out, float).ravel(),
                                np.asarray(lin.inp, float).ravel()])
        nonzero = np.flatnonzero(coefs)
        cols = np.concatenate([self.z, self.x])[nonzero]
        addends: list[tuple[float, int]] = list(zip(coefs[nonzero].tolist(), cols.tolist()))
        # +1: the literal is sum <= rhs, -1: sum >= rhs, 0: both or an equation
        side = {"<=": 1, "<": 1, ">=": -1, ">": -1}.get(atom.op, 0)
        for term in atom.norms:
            addends += _norm_terms(self.enc, term, self.z, self.x, term.weight * side > 0)
        const = float(np.asarray(lin.const, float).ravel()[0])
        merged: dict[int, float] = {}
        for c, var in addends:
            if var in self.enc.fixed:
                const += c * self.enc.fixed[var]
            else:
                merged[var] = merged.get(var, 0.0) + c
        merged = {var: c for var, c in merged.items() if c != 0.0}
        op = atom.op
        if not merged:
            return {"<=": const <= 0, "<": const < 0, ">=": const >= 0, ">": const > 0,
                    "==": const == 0, "!=": const != 0}[op]
        vars_, coefs_ = list(merged), list(merged.values())

        def literal(kind: str, rhs: float) -> list[_Literal]:
            # sum coefs vars + const (op) rhs  <=>  sum coefs vars (op) rhs - const
            return [(kind, vars_, coefs_, rhs - const)]

        if op in ("<", ">", "!="):
            self.relaxed |= self.margin == 0.0
        if op == "!=":
            if self.margin == 0.0:  # v <= 0 or v >= 0 holds everywhere
                return True
            return ("or", [literal("LE", -self.margin), literal("GE", self.margin)])
        kind = {"<=": "LE", "<": "LE", ">=": "GE", ">": "GE", "==": "EQ"}[op]
        rhs = {"<": -self.margin, ">": self.margin}.get(op, 0.0)
        return literal(kind, rhs)

    def compile(self, f: q.Formula):
        """The formula with constants folded and nested And/Or flattened: a bool, a literal
        list (a conjunction), ("and", items) or ("or", items)."""
        if isinstance(f, q.Const):
            return bool(f.value)
        if isinstance(f, q.Atom):
            return self.atom(f)
        kind = "and" if isinstance(f, q.And) else "or"
        items = []
        for item in f.items:
            c = self.compile(item)
            if isinstance(c, bool):
                if c != (kind == "and"):  # false in an And, true in an Or
                    return c
                continue
            if isinstance(c, tuple) and c[0] == kind:
                items += c[1]
            else:
                items.append(c)
        if not items:
            return kind == "and"
        if len(items) == 1:
            return items[0]
        return (kind, items)


def _dnf(c, limit: int) -> list[list[_Literal]]:
    """A compiled formula as a list of disjuncts, each a list of literals (their conjunction)."""
    if isinstance(c, list):
        return [c]
    kind, items = c
    if kind == "or":
        out = [d for item in items for d in _dnf(item, limit)]
    else:
        out = [[]]
        for item in items:
            out = [a + b for a, b in itertools.product(out, _dnf(item, limit))]
            if len(out) > limit:
                break
    if len(out) > limit:
        raise _Unsupported(f"the negated body has more than {limit} disjuncts in disjunctive "
                           f"normal form (an Or inside an And inside an Or); Marabou needs "
                           f"one flat disjunction per conjunct")
    return out


def _encode_body(body: _Body, formula: q.Formula, limit: int) -> bool | None:
    """Add NOT formula: top-level literals as equations, each top-level disjunction as one
    disjunction constraint. Returns its truth value when it is constant, else None."""
    c = body.compile(q.negate(formula))
    if isinstance(c, bool):
        return c
    conjuncts = c[1] if isinstance(c, tuple) and c[0] == "and" else [c]
    for item in conjuncts:
        disjuncts = _dnf(item, limit)
        if len(disjuncts) == 1:
            body.enc.equations += disjuncts[0]
        else:
            body.enc.disjunctions.append(disjuncts)
    return None


# --- Marabou: a job of plain data, solved in a worker process or in this one ----------------
#
# The functions from _core_equation to _serve use only their arguments and local imports: the
# worker process runs their source (inspect.getsource), so it starts without specrob, numpy or
# torch, and both paths run the same code.

def _job(enc: _Encoding, x: np.ndarray, z: np.ndarray, timeout: float, verbosity: int) -> dict:
    """Everything Marabou needs, as plain picklable data."""
    return {"size": enc.size, "inputs": x.tolist(), "outputs": z.tolist(),
            "read": x.tolist() + z.tolist(),
            "lo": enc.lo.tolist(), "hi": enc.hi.tolist(), "equations": enc.equations,
            "relus": enc.relus, "leaky": enc.leaky, "abses": enc.abses,
            "disjunctions": enc.disjunctions, "clips": enc.clips,
            "timeout": 0 if math.isinf(timeout) else max(1, math.ceil(timeout)),
            "verbosity": int(verbosity)}


def _core_equation(core, literal):
    """A MarabouCore.Equation from a literal (kind, variables, coefficients, scalar)."""
    kind, variables, coefs, scalar = literal
    eq = core.Equation(getattr(core.Equation, kind))
    for c, v in zip(coefs, variables):
        eq.addAddend(c, v)
    eq.setScalar(scalar)
    return eq


def _build(core, job):
    """The MarabouCore.InputQuery of a job."""
    import math
    ipq = core.InputQuery()
    ipq.setNumberOfVariables(job["size"])
    for i, v in enumerate(job["inputs"]):
        ipq.markInputVariable(v, i)
    outputs = job["outputs"]
    if len(set(outputs)) == len(outputs) and not set(outputs) & set(job["inputs"]):
        for i, v in enumerate(outputs):
            ipq.markOutputVariable(v, i)
    for v, (lo, hi) in enumerate(zip(job["lo"], job["hi"])):
        if math.isfinite(lo):
            ipq.setLowerBound(v, lo)
        if math.isfinite(hi):
            ipq.setUpperBound(v, hi)
    for literal in job["equations"]:
        ipq.addEquation(_core_equation(core, literal))
    for b, f in job["relus"]:
        core.addReluConstraint(ipq, b, f)
    for b, f, alpha in job["leaky"]:
        core.addLeakyReluConstraint(ipq, b, f, alpha)
    for b, f in job["abses"]:
        core.addAbsConstraint(ipq, b, f)
    for disjuncts in job["disjunctions"]:
        core.addDisjunctionConstraint(ipq, [[_core_equation(core, lit) for lit in d]
                                            for d in disjuncts])
    # last: each clip allocates its auxiliary variables after the current ones
    for b, f, low, high in job["clips"]:
        core.addClipConstraint(ipq, b, f, low, high)
    return ipq


def _configure(core, job):
    """Explicit options: MarabouCore.Options() starts from the process-wide settings of the
    last solve, so every field that matters is set. Single-threaded; timeout in whole seconds."""
    o = core.Options()
    o._numWorkers, o._snc, o._numBlasThreads = 1, False, 1
    o._solveWithMILP, o._dumpBounds, o._produceProofs = False, False, False
    o._restoreTreeStates, o._performLpTighteningAfterSplit = False, False
    o._initialDivides, o._onlineDivides, o._initialTimeout, o._timeoutFactor = 0, 2, 5, 1.5
    o._splitThreshold, o._splittingStrategy, o._sncSplittingStrategy = 20, "auto", "auto"
    o._tighteningStrategy = job.get("tightening", "deeppoly")
    o._milpTightening, o._milpSolverTimeout = "none", 0
    o._preprocessorBoundTolerance, o._lpSolver = 1e-10, "native"
    o._verbosity, o._timeoutInSeconds = job["verbosity"], job["timeout"]
    return o


def _run(core, job):
    """Solve a job: (Marabou's exit string, the values of job["read"] when "sat", else None)."""
    code, values, _ = core.solve(_build(core, job), _configure(core, job), "")
    read = [values.get(v) for v in job["read"]] if code == "sat" else None
    return code, read


def _serve():
    """The worker's loop: length-prefixed pickled jobs on stdin, answers on the original
    stdout; Marabou's own printing goes to stderr, or is captured and returned when quiet."""
    import os
    import pickle
    import sys
    import tempfile

    from maraboupy import MarabouCore as core
    try:  # Linux: die with the parent, so a solve that never ends is never orphaned
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except Exception:  # noqa: BLE001, S110 - elsewhere the atexit kill has to do
        pass
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    saved = (os.dup(1), os.dup(2))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker

    def send(answer):
        data = pickle.dumps(answer)
        channel.write(len(data).to_bytes(8, "little") + data)
        channel.flush()

    send(("ready",))
    jobs = sys.stdin.buffer
    while True:
        header = jobs.read(8)
        if len(header) < 8:
            return
        job = pickle.loads(jobs.read(int.from_bytes(header, "little")))
        quiet = job["verbosity"] == 0
        if quiet:
            log.seek(0)
            log.truncate()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        try:
            answer = ("done",) + _run(core, job)
        except Exception as e:  # noqa: BLE001 - reported to the caller as an error
            answer = ("exception", f"{type(e).__name__}: {e}")
        finally:
            if quiet:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        text = ""
        if quiet:
            log.seek(0)
            text = log.read().decode(errors="replace")[-2000:]
        send(answer + (text,))


_WORKER_FUNCTIONS = (_core_equation, _build, _configure, _run, _serve)


class _Worker:
    """One Marabou process reused across queries (0.3 s to start), killed and restarted when a
    query overruns its hard limit or Marabou crashes: Marabou 2.0 can run past its own timeout
    without end (its main-loop clock stalls in the SoI local search), ignores SIGTERM, and some
    inputs segfault it; none of that may take the caller down."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.owner = os.getpid()
        self.lock = threading.Lock()

    def _start(self) -> None:
        source = "\n\n".join(inspect.getsource(f) for f in _WORKER_FUNCTIONS) + "\n_serve()\n"
        self.proc = subprocess.Popen([sys.executable, "-c", source], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        answer = self._receive(_STARTUP_SECONDS)
        if not answer or answer[0] != "ready":
            self.stop()
            raise RuntimeError("the Marabou worker process did not start"
                               + (f" ({answer[1]})" if answer else ""))

    def stop(self) -> None:
        """Kill the process (the next query starts another)."""
        if self.proc is not None and self.owner == os.getpid():
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _receive(self, seconds: float | None):
        """The next answer, None when the deadline passes, ("died", returncode) on EOF."""
        fd = self.proc.stdout.fileno()
        deadline = None if seconds is None else time.monotonic() + seconds
        buffer = b""
        need = 8
        while len(buffer) < need:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, need - len(buffer))
            if not chunk:
                return ("died", self.proc.wait())
            buffer += chunk
            if need == 8 and len(buffer) >= 8:
                need = 8 + int.from_bytes(buffer[:8], "little")
        return pickle.loads(buffer[8:need])

    def run(self, job: dict, seconds: float | None):
        """The worker's answer to a job, None when it was killed after `seconds`, or
        ("died", returncode)."""
        with self.lock:
            if self.owner != os.getpid():  # a forked copy: the process is the parent's
                self.proc, self.owner = None, os.getpid()
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            data = pickle.dumps(job)
            finished = False
            try:
                self.proc.stdin.write(len(data).to_bytes(8, "little") + data)
                self.proc.stdin.flush()
                answer = self._receive(seconds)
                finished = answer is not None and answer[0] != "died"
                return answer
            except BrokenPipeError:
                return ("died", self.proc.wait())
            finally:
                if not finished:  # killed, died or interrupted: never reuse it
                    self.stop()


_STARTUP_SECONDS = 120.0
_WORKER = _Worker()
atexit.register(_WORKER.stop)


def _hard_limit(timeout: float) -> float | None:
    """When to kill the worker: Marabou's timeout excludes its preprocessing, so leave room."""
    return None if math.isinf(timeout) else 1.5 * timeout + 5.0


def _notes(relaxed_region: bool, relaxed_strict: bool) -> list[str]:
    notes = []
    if relaxed_region:
        notes.append("the l_2 ball was searched as its enclosing box: re-check that a "
                     "counterexample lies in the ball")
    if relaxed_strict:
        notes.append("strict comparisons were encoded non-strictly: a counterexample may be a "
                     "tie")
    return notes


def solve_query(net: Network, query: q.Query, *, timeout: float = 60.0, verbosity: int = 0,
                isolate: bool = True, kill_after: float | None = None,
                max_disjuncts: int = 256, strict_margin: float = 0.0) -> MarabouResult:
    """Ask Marabou, in one query, for an x in the query's input set with z = f(x) violating
    query.body. "unsat" proves the body on the set; "sat" gives a candidate counterexample for
    the caller to re-check; "timeout" after `timeout` seconds (Marabou's, rounded up to whole
    seconds; inf for none); "error" with the reason when the network or body cannot be encoded
    or Marabou fails.

    `isolate` runs Marabou in a reused worker process, killed after `kill_after` seconds
    (default 1.5 timeout + 5) since Marabou can overrun its timeout forever or crash; without
    it, Marabou runs in this process (about 0.3 ms less per query, no protection).
    `max_disjuncts` bounds a disjunction built from nested Or/And; `strict_margin` > 0 encodes
    the negation's `v > 0` as `v >= strict_margin` (no longer sound for violations smaller than
    it, and only meaningful above Marabou's tolerances, about 1e-5)."""
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if not strict_margin >= 0:
        raise ValueError(f"strict_margin must be >= 0, got {strict_margin}")
    start = time.perf_counter()
    region = query.region
    n, m = net.input_size, net.output_size
    if np.shape(region.centre) != (n,) or query.classes != m:
        raise ValueError(f"the query is for {np.shape(region.centre)} inputs and "
                         f"{query.classes} classes, the network has ({n},) and {m}")
    relaxed_region = region.p not in (1, math.inf) and not math.isinf(region.eps)

    def result(status: str, message: str = "", relaxed_strict: bool = False,
               **kw) -> MarabouResult:
        notes = _notes(relaxed_region, relaxed_strict) if status == "sat" else []
        text = "; ".join(([message] if message else []) + notes)
        return MarabouResult(status, seconds=time.perf_counter() - start, message=text,
                             relaxed_region=relaxed_region, relaxed_strict=relaxed_strict,
                             **kw)

    reason = supports(net)
    if reason is not None:
        return result("error", reason)
    low, high = region.box_low, region.box_high
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return result("error", "Marabou needs bounded inputs: the input region is unbounded")
    if np.any(low > high):
        return result("unsat", "the input region is empty")
    enc = _Encoding()
    try:
        x = _encode_region(enc, region)
        z = _encode_network(enc, net, x)
        body = _Body(enc, z, x, strict_margin)
        truth = _encode_body(body, query.body, max_disjuncts)
    except _Unsupported as e:
        return result("error", str(e))
    strict = body.relaxed
    if truth is False:  # NOT body is false: the body holds everywhere
        return result("unsat", "the negated body is false", strict)
    job = _job(enc, x, z, timeout, verbosity)
    code, read, failure = _solve(job, isolate, timeout, kill_after)
    if failure is not None:
        return result(failure[0], failure[1], strict)
    status = _EXIT.get(code)
    magnitude = _magnitude(job)
    if status == "unsat" and magnitude > SAFE_MAGNITUDE:
        second = {**job, "tightening": _SECOND_OPINION}
        code2, read2, failure2 = _solve(second, isolate, timeout, kill_after)
        status2 = _EXIT.get(code2) if failure2 is None else failure2[0]
        if status2 == "sat" and failure2 is None:
            status, read = "sat", read2  # the caller re-checks the point on the model
        elif status2 != "unsat":
            return result("error", f"UNSAT not accepted: the query's magnitudes reach "
                                   f"{magnitude:.3g} > {SAFE_MAGNITUDE:g}, where Marabou's "
                                   f"tightening is unreliable, and a second configuration "
                                   f"(tightening {_SECOND_OPINION}) answered {status2}", strict)
        else:
            return result("unsat", f"UNSAT confirmed by a second Marabou configuration "
                                   f"(tightening {_SECOND_OPINION}): magnitudes reach "
                                   f"{magnitude:.3g} > {SAFE_MAGNITUDE:g}", strict)
    if status is None:
        return result("error", f"Marabou returned {code} {read or ''}".strip(), strict)
    if status == "unsat":
        return result("unsat", f"numerically safe: magnitudes <= {SAFE_MAGNITUDE:g} "
                               f"(largest {magnitude:.3g})", strict)
    if status != "sat":
        return result(status, "", strict)
    if read is None or any(v is None for v in read):
        return result("error", "Marabou answered sat without the values of the inputs and "
                               "outputs", strict)
    point = np.array(read[:n], dtype=np.float64)
    outputs = np.array(read[n:], dtype=np.float64)
    # Marabou's values may leave the box by its tolerances (1e-16 seen): project back
    point = np.clip(point, low, high)
    return result("sat", "", strict, counterexample=point, outputs=outputs)


def _magnitude(job: dict) -> float:
    """The largest finite |bound|, |coefficient| or |constant| of a job."""
    values = [abs(v) for v in job["lo"] + job["hi"] if math.isfinite(v)]
    for _, _, coefs, scalar in job["equations"]:
        values.extend(abs(c) for c in coefs)
        values.append(abs(scalar))
    for disjuncts in job["disjunctions"]:
        for d in disjuncts:
            for _, _, coefs, scalar in d:
                values.extend(abs(c) for c in coefs)
                values.append(abs(scalar))
    return max(values, default=0.0)


def _solve(job: dict, isolate: bool, timeout: float, kill_after: float | None):
    """Run one job: (Marabou's exit string, values read or the log's last line, None), or
    (None, None, (status, message)) when Marabou could not answer."""
    if isolate:
        limit = _hard_limit(timeout) if kill_after is None else kill_after
        try:
            answer = _WORKER.run(job, limit)
        except (OSError, RuntimeError) as e:
            return None, None, ("error", f"cannot run Marabou: {e}")
        if answer is None:
            return None, None, ("timeout", f"Marabou overran its timeout; its process was "
                                           f"killed after {limit:g} s")
        if answer[0] == "died":
            return None, None, ("error", f"Marabou crashed (exit status {answer[1]})")
        if answer[0] == "exception":
            return None, None, ("error", f"Marabou failed: {answer[1]} {answer[2]}".strip())
        _, code, read, log = answer
    else:
        try:
            from maraboupy import MarabouCore as core
            code, read = _run(core, job)
        except Exception as e:  # noqa: BLE001 - ImportError, or a MarabouError in Python
            return None, None, ("error", f"Marabou failed: {type(e).__name__}: {e}")
        log = ""
    if _EXIT.get(code) is None:
        detail = log.strip().splitlines()[-1] if log.strip() else ""
        return code, detail, None
    return code, read, None

