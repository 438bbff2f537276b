"""A property and one centre's data -> a verification `Query` (piecewise-linear atoms over the
outputs z and inputs x, index quantifiers expanded over the classes).

Terms are evaluated symbolically as affine expressions in (z, x); f(x0), x0, y and the
parameters are numbers here. SCR's `softmax(f(x))[i] >= eta` becomes docs/design.md §4's sufficient
margin condition z_i - z_j >= log((m - 1) eta / (1 - eta)) for all j != i, and the query is
marked `sufficient`. Anything not piecewise linear raises `Unsupported` with the reason.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import assert_never

import numpy as np

from specrob.errors import SpecrobError
from specrob.lang import ir
from specrob.lang.params import constant, resolve_params
from specrob.lang import query as q


class Unsupported(SpecrobError):
    """The property (or a part of it) has no exact piecewise-linear encoding."""


@dataclass
class _Scalar:
    out: np.ndarray  # (m,)
    inp: np.ndarray  # (n,)
    const: float
    norms: list = field(default_factory=list)  # [(weight, q.Affine, p)]

    def is_const(self) -> bool:
        return not self.norms and not self.out.any() and not self.inp.any()


@dataclass
class _Vector:
    out: np.ndarray  # (L, m)
    inp: np.ndarray  # (L, n)
    const: np.ndarray  # (L,)

    def is_const(self) -> bool:
        return not self.out.any() and not self.inp.any()

    def affine(self) -> q.Affine:
        return q.Affine(self.out, self.inp, self.const)


@dataclass
class Centre:
    """The data of one centre: x0, its label y and the network's outputs f(x0)."""

    x0: np.ndarray
    y: int
    fx0: np.ndarray


class Encoder:
    """Encodes one property for centres of a given input and output size."""

    def __init__(self, prop: ir.Property, input_dim: int, classes: int):
        self.prop = prop
        self.n, self.m = input_dim, classes
        self.params = resolve_params(prop, input_dim)
        self.eps = constant(prop.ball.radius, self.params)
        self.low = constant(prop.domain.low, self.params)
        self.high = constant(prop.domain.high, self.params)

    def query(self, c: Centre) -> q.Query:
        self.centre = c
        self.sufficient = False
        self.env: dict[str, int] = {}
        body = self.formula(self.prop.body)
        region = q.InputRegion(np.asarray(c.x0, dtype=np.float64), self.eps, self.prop.ball.p,
                               self.low, self.high)
        note = "softmax through the sufficient margin condition" if self.sufficient else ""
        return q.Query(body, region, self.m, self.sufficient, note)

    # --- formulas ------------------------------------------------------------------------
    def formula(self, f: ir.Formula) -> q.Formula:
        if isinstance(f, ir.Truth):
            return q.Const(f.value)
        if isinstance(f, ir.IndexCompare):
            a, b = self.index(f.left), self.index(f.right)
            return q.Const((a == b) == (f.op == "=="))
        if isinstance(f, (ir.And, ir.Or)):
            items = tuple(self.formula(i) for i in f.items)
            return q.And(items) if isinstance(f, ir.And) else q.Or(items)
        if isinstance(f, ir.IndexQuant):
            skip = self.index(f.exclude) if f.exclude is not None else None
            items = []
            for j in range(self.m):
                if j == skip:
                    continue
                self.env[f.var] = j
                items.append(self.formula(f.body))
            del self.env[f.var]
            return q.And(tuple(items)) if f.kind == "forall" else q.Or(tuple(items))
        if isinstance(f, ir.Compare):
            return self.compare(f)
        assert_never(f)  # a new IR formula fails type checking here until it is encoded

    def compare(self, f: ir.Compare) -> q.Formula:
        scr = self._softmax_margin(f)
        if scr is not None:
            return scr
        diff = self._sub(self.scalar(f.left), self.scalar(f.right))
        if diff.is_const():
            v = diff.const
            return q.Const({"<=": v <= 0, "<": v < 0, ">=": v >= 0, ">": v > 0, "==": v == 0,
                            "!=": v != 0}[f.op])
        lin = q.Affine(diff.out[None, :], diff.inp[None, :], np.array([diff.const]))
        norms = tuple(q.NormTerm(w, vec, p) for w, vec, p in diff.norms)
        return _linear_if_possible(q.Atom(lin, norms, f.op))

    def _softmax_margin(self, f: ir.Compare) -> q.Formula | None:
        """softmax(f(x))[i] >= eta  ⟸  forall j != i: z_i - z_j >= log((m - 1) eta / (1 - eta))."""
        for lhs, rhs, ops in ((f.left, f.right, (">=", ">")), (f.right, f.left, ("<=", "<"))):
            if (f.op in ops and isinstance(lhs, ir.Index) and isinstance(lhs.vector, ir.Softmax)
                    and lhs.vector.vector == ir.Net(False)):
                eta = self.scalar(rhs)
                if not eta.is_const():
                    return None
                eta = eta.const
                i = self.index(lhs.index)
                if eta <= 0:  # a softmax entry is positive
                    return q.Const(True)
                if eta >= 1:  # ... and below 1 when m >= 2
                    return q.Const(False)
                strict = f.op in (">", "<")
                margin = math.log((self.m - 1) * eta / (1 - eta))
                self.sufficient = True
                atoms = []
                for j in range(self.m):
                    if j == i:
                        continue
                    out = np.zeros((1, self.m))
                    out[0, i], out[0, j] = 1.0, -1.0
                    lin = q.Affine(out, np.zeros((1, self.n)), np.array([-margin]))
                    atoms.append(q.Atom(lin, (), ">" if strict else ">="))
                return q.And(tuple(atoms))
        return None

    # --- terms -----------------------------------------------------------------------------
    def index(self, i: ir.IndexTerm) -> int:
        if isinstance(i, ir.Label):
            return int(self.centre.y)
        if isinstance(i, ir.IndexVar):
            return self.env[i.name]
        if isinstance(i, ir.IndexConst):
            return i.value
        v = self.vector(i.vector)
        if not v.is_const():
            raise Unsupported("argmax of a vector that changes with x")
        return int(np.argmax(v.const))

    def number(self, value: float) -> _Scalar:
        return _Scalar(np.zeros(self.m), np.zeros(self.n), float(value))

    def vector(self, t) -> _Vector:
        m, n = self.m, self.n
        if isinstance(t, ir.Net):
            if t.centre:
                return _Vector(np.zeros((m, m)), np.zeros((m, n)), np.asarray(self.centre.fx0, float))
            return _Vector(np.eye(m), np.zeros((m, n)), np.zeros(m))
        if isinstance(t, ir.Input):
            if t.centre:
                return _Vector(np.zeros((n, m)), np.zeros((n, n)), np.asarray(self.centre.x0, float))
            return _Vector(np.zeros((n, m)), np.eye(n), np.zeros(n))
        if isinstance(t, ir.OneHot):
            e = np.zeros(m)
            e[self.index(t.index)] = 1.0
            return _Vector(np.zeros((m, m)), np.zeros((m, n)), e)
        if isinstance(t, ir.Arith):
            if t.op in "+-":
                a, b = self.vector(t.left), self.vector(t.right)
                s = 1.0 if t.op == "+" else -1.0
                return _Vector(a.out + s * b.out, a.inp + s * b.inp, a.const + s * b.const)
            vec_side, other = (t.left, t.right) if _is_vec(t.left) else (t.right, t.left)
            v, k = self.vector(vec_side), self.scalar(other)
            if not k.is_const():
                raise Unsupported("a vector multiplied by a term that changes with x")
            factor = k.const if t.op == "*" else 1.0 / k.const
            return _Vector(v.out * factor, v.inp * factor, v.const * factor)
        if isinstance(t, ir.Neg):
            v = self.vector(t.operand)
            return _Vector(-v.out, -v.inp, -v.const)
        if isinstance(t, ir.Softmax):
            v = self.vector(t.vector)
            if v.is_const():
                e = np.exp(v.const - v.const.max())
                return _Vector(np.zeros((len(e), m)), np.zeros((len(e), n)), e / e.sum())
            raise Unsupported("softmax of the outputs is not piecewise linear")
        raise Unsupported(f"cannot encode {type(t).__name__}")

    def scalar(self, t) -> _Scalar:
        if isinstance(t, ir.Const):
            return self.number(t.value)
        if isinstance(t, (ir.Param, ir.DataConst)):
            return self.number(self.params[t.name])
        if isinstance(t, ir.Index):
            v = self.vector(t.vector)
            i = self.index(t.index)
            return _Scalar(v.out[i].copy(), v.inp[i].copy(), float(v.const[i]))
        if isinstance(t, ir.Arith):
            a, b = self.scalar(t.left), self.scalar(t.right)
            if t.op == "+":
                return self._add(a, b, 1.0)
            if t.op == "-":
                return self._sub(a, b)
            if t.op == "*":
                if a.is_const():
                    return self._scale(b, a.const)
                if b.is_const():
                    return self._scale(a, b.const)
                raise Unsupported("a product of two terms that change with x")
            if not b.is_const():
                raise Unsupported("a division by a term that changes with x")
            if b.const == 0:
                raise Unsupported("a division by zero at this centre")
            return self._scale(a, 1.0 / b.const)
        if isinstance(t, ir.Neg):
            return self._scale(self.scalar(t.operand), -1.0)
        if isinstance(t, ir.Norm):
            v = self.vector(t.vector)
            if v.is_const():
                return self.number(float(np.linalg.norm(v.const, ord=t.p)))
            if t.p == 2:
                raise Unsupported("an l_2 norm of a term that changes with x is not piecewise "
                                  "linear")
            return _Scalar(np.zeros(self.m), np.zeros(self.n), 0.0, [(1.0, v.affine(), t.p)])
        if isinstance(t, ir.Abs):
            s = self.scalar(t.operand)
            if s.is_const():
                return self.number(abs(s.const))
            if s.norms:
                raise Unsupported("abs of a norm")
            vec = q.Affine(s.out[None, :], s.inp[None, :], np.array([s.const]))
            return _Scalar(np.zeros(self.m), np.zeros(self.n), 0.0, [(1.0, vec, 1.0)])
        if isinstance(t, (ir.Reduce, ir.Extremum)):
            raise Unsupported(f"{'max' if t.kind == 'max' else 'min'} over terms that change with "
                              f"x is not encoded yet; write it with a quantifier "
                              f"(forall j != y: ...)")
        raise Unsupported(f"cannot encode {type(t).__name__}")

    def _add(self, a: _Scalar, b: _Scalar, s: float) -> _Scalar:
        return _Scalar(a.out + s * b.out, a.inp + s * b.inp, a.const + s * b.const,
                       a.norms + [(s * w, v, p) for w, v, p in b.norms])

    def _sub(self, a: _Scalar, b: _Scalar) -> _Scalar:
        return self._add(a, b, -1.0)

    def _scale(self, a: _Scalar, k: float) -> _Scalar:
        return _Scalar(a.out * k, a.inp * k, a.const * k, [(w * k, v, p) for w, v, p in a.norms])


DRY_INPUTS = 8  # inputs of the synthetic network a property is encoded for by `dry_query`
DRY_LIMIT = 4096  # the largest constant index `dry_query` encodes


def dry_query(prop: ir.Property) -> q.Query:
    """The property encoded at a synthetic centre (the middle of its domain, outputs f(x0) all
    distinct and non-zero) for a network with DRY_INPUTS inputs and enough outputs for its
    class indices: what the back ends' `supports` inspect. Raises Unsupported with the
    reason."""
    from specrob.lang.walk import class_indices
    # constant indices (f(x)[k], x0[i]) must exist in the synthetic network, inputs included
    top = 1 + max(class_indices(prop), default=0)
    if top > DRY_LIMIT:  # the encoder's dense rows would take O(top^2) memory
        raise Unsupported(f"constant index {top - 1} is beyond the dry run's synthetic network "
                          f"({DRY_LIMIT} inputs and classes); the back ends decide it with the "
                          f"real network")
    m, n = max(10, top), max(DRY_INPUTS, top)
    params = resolve_params(prop, n)
    low, high = constant(prop.domain.low, params), constant(prop.domain.high, params)
    mid = 0.5 if not (math.isfinite(low) and math.isfinite(high)) else (low + high) / 2
    centre = Centre(np.full(n, mid), 0, np.linspace(1.0, 2.0, m))
    return Encoder(prop, n, m).query(centre)


def _linear_if_possible(atom: q.Atom) -> q.Formula:
    """w·||v||_inf + c <= 0 with w > 0 and c constant is the conjunction of the linear atoms
    ±w·v_l + c <= 0 over the rows l (exact), which bound propagation and VNN-LIB can take."""
    if (len(atom.norms) == 1 and atom.norms[0].p == math.inf and atom.op in ("<=", "<")
            and atom.norms[0].weight > 0 and not atom.lin.out.any() and not atom.lin.inp.any()):
        w, v = atom.norms[0].weight, atom.norms[0].vec
        c = float(atom.lin.const[0])
        rows = []
        for sign in (1.0, -1.0):
            for l in range(v.rows):
                rows.append(q.Atom(q.Affine(sign * w * v.out[l:l + 1], sign * w * v.inp[l:l + 1],
                                            np.array([sign * w * v.const[l] + c])), (), atom.op))
        return q.And(tuple(rows))
    return atom


def _is_vec(t) -> bool:
    from specrob.lang.walk import is_vector
    return is_vector(t)
