"""Marabou variables with interval bounds and constraints, collected in Python (plain
lists and arrays) until one `MarabouCore.InputQuery` is built in the worker.
"""
from __future__ import annotations

import math

import numpy as np



# rounding slack on the interval bounds handed to Marabou: relative to the terms' magnitude
SLACK = 1e-9


class NotEncodable(Exception):
    """A network or query the back end cannot encode exactly: the reason."""


class Encoding:
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

    def tighten(self, variables: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        """Intersect the variables' bounds with sound outer bounds computed elsewhere (branch
        and bound's alpha-CROWN bounds), widened by SLACK against rounding: the encoding
        still describes a superset of the real executions, with fewer unstable ReLUs."""
        v = np.asarray(variables).reshape(-1)
        lo, hi = np.asarray(lo, float).reshape(-1), np.asarray(hi, float).reshape(-1)
        lo = lo - SLACK * (1 + np.abs(lo))
        hi = hi + SLACK * (1 + np.abs(hi))
        new_lo = np.maximum(self._lo[v], lo)
        new_hi = np.minimum(self._hi[v], hi)
        self._lo[v], self._hi[v] = new_lo, np.maximum(new_hi, new_lo)

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
        rows, cols, coefs = merged(rows.astype(np.int64), cols.astype(np.int64),
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
        lo, hi = lo - SLACK * (1 + size), hi + SLACK * (1 + size)
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
        v: int  # x holds variable numbers
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


def merged(rows: np.ndarray, cols: np.ndarray,
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
