"""A verification query for ONE centre: the property with the centre's data substituted
(label, x0, f(x0), parameters), index quantifiers expanded over the m classes, as a formula of
piecewise-linear atoms over the network's outputs z (length m) and inputs x (length n).

An atom reads   lin(z, x) + sum_k weight_k * ||vec_k(z, x)||_{p_k}   op   0
where lin and every component of vec_k are affine in (z, x). Norm terms exist only for p in
{1, inf} (l_2 norms are not piecewise linear and are not encoded). This is what the back ends
(bound propagation, Marabou, VNN-LIB) consume; it knows nothing of the .rspec syntax.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Union, assert_never

import numpy as np

NEGATE = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!=", "!=": "=="}


@dataclass(frozen=True, eq=False)
class Affine:
    """Affine expressions in (z, x): rows of out @ z + inp @ x + const; shapes (L, m), (L, n),
    (L,). A scalar expression has L = 1."""

    out: np.ndarray
    inp: np.ndarray
    const: np.ndarray

    @property
    def rows(self) -> int:
        return self.const.shape[0]

    def uses_inputs(self) -> bool:
        return bool(np.any(self.inp != 0))


@dataclass(frozen=True, eq=False)
class NormTerm:
    """weight * ||vec||_p with p in {1, inf}."""

    weight: float
    vec: Affine
    p: float


@dataclass(frozen=True, eq=False)
class Atom:
    """lin + sum(norms) op 0, with op in <= < >= > == !=; lin has one row."""

    lin: Affine
    norms: tuple[NormTerm, ...]
    op: str

    def negated(self) -> "Atom":
        return Atom(self.lin, self.norms, NEGATE[self.op])

    def is_linear_in_outputs(self) -> bool:
        """No norms and no input variables: a linear output specification."""
        return not self.norms and not self.lin.uses_inputs()


@dataclass(frozen=True, eq=False)
class And:
    items: tuple["Formula", ...]


@dataclass(frozen=True, eq=False)
class Or:
    items: tuple["Formula", ...]


@dataclass(frozen=True, eq=False)
class Const:
    value: bool


Formula = Union[Atom, And, Or, Const]


def negate(f: Formula) -> Formula:
    if isinstance(f, Atom):
        return f.negated()
    if isinstance(f, And):
        return Or(tuple(negate(i) for i in f.items))
    if isinstance(f, Or):
        return And(tuple(negate(i) for i in f.items))
    if isinstance(f, Const):
        return Const(not f.value)
    assert_never(f)  # a new query formula fails type checking here until it is negated


@dataclass(frozen=True, eq=False)
class InputRegion:
    """The input set: the l_p ball around `centre` of radius `eps`, intersected with the box
    [low, high] (scalars: the same bounds for every coordinate; or arrays (n,): per
    coordinate). `box_low`/`box_high` enclose the set (for l_inf they are exactly it).

    A per-coordinate box [l, u] (VNN-LIB's input constraints) is `InputRegion.box(l, u)`:
    centre (l + u) / 2, eps = inf, p = inf, low = l, high = u."""

    centre: np.ndarray  # (n,)
    eps: float
    p: float
    low: float | np.ndarray
    high: float | np.ndarray

    @staticmethod
    def box(low: np.ndarray, high: np.ndarray) -> "InputRegion":
        low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
        return InputRegion((low + high) / 2, math.inf, math.inf, low, high)

    @property
    def is_box(self) -> bool:
        """Per-coordinate bounds (arrays), not a ball within a scalar domain."""
        return np.ndim(self.low) > 0 or np.ndim(self.high) > 0

    @property
    def box_low(self) -> np.ndarray:
        return np.maximum(self.centre - self.eps, self.low)

    @property
    def box_high(self) -> np.ndarray:
        return np.minimum(self.centre + self.eps, self.high)


@dataclass(frozen=True, eq=False)
class Query:
    """Does `body` hold for every x in `region` (z = f(x))? `sufficient` marks a body that is
    stronger than the property (e.g. SCR's margin condition): proving it proves the property,
    but a counterexample to it is only a candidate until checked against the property."""

    body: Formula
    region: InputRegion
    classes: int
    sufficient: bool = False
    note: str = ""


def output_rows(f: Formula) -> list[tuple[np.ndarray, float]]:
    """The rows (c, d), c of shape (m,), one per atom of `f` that is a linear inequality in the
    outputs only, in the formula's depth-first order: the atom holds at z exactly when
    c . z + d > 0 (strict atoms) or >= 0. A positive lower bound of c . f(x) + d over the input
    set proves the atom there; bound propagation proves (verification) and trains
    (training's certified regime) with these rows."""
    out: list[tuple[np.ndarray, float]] = []

    def walk(g: Formula) -> None:
        if isinstance(g, Atom):
            if g.is_linear_in_outputs() and g.op in ("<=", "<", ">=", ">"):
                sign = 1.0 if g.op in (">=", ">") else -1.0
                out.append((sign * g.lin.out[0], sign * float(g.lin.const[0])))
        elif isinstance(g, (And, Or)):
            for item in g.items:
                walk(item)

    walk(f)
    return out


def has_or(f: Formula) -> bool:
    """Whether the formula has a disjunction (below conjunctions)."""
    return isinstance(f, Or) or (isinstance(f, And) and any(has_or(i) for i in f.items))


def output_sensitivity(a: Atom, error: np.ndarray) -> float:
    """How far the atom's left-hand side can move when every output z_i moves by at most
    error[i] (shape (m,)): |c| . error + sum_k |w_k| || |A_k| error ||_{p_k}."""
    delta = float(np.abs(a.lin.out[0]) @ error)
    for t in a.norms:
        moved = np.abs(t.vec.out) @ error
        delta += abs(t.weight) * float(moved.max(initial=0.0) if t.p == np.inf else moved.sum())
    return delta


def strengthen(f: Formula, error: np.ndarray) -> Formula:
    """A formula whose truth at z implies the truth of `f` at every z' with |z' - z| <= error
    (per output, shape (m,)): each atom's margin is raised by its output sensitivity. Proving it
    for the exact network proves `f` for any execution within `error` of it (float32)."""
    if isinstance(f, Const):
        return f
    if isinstance(f, (And, Or)):
        return type(f)(tuple(strengthen(i, error) for i in f.items))
    delta = output_sensitivity(f, error)
    if delta == 0.0:
        return f
    shift = lambda d: Atom(Affine(f.lin.out, f.lin.inp, f.lin.const + d), f.norms, f.op)  # noqa: E731
    if f.op in (">", ">="):
        return shift(-delta)
    if f.op in ("<", "<="):
        return shift(delta)
    if f.op == "!=":  # |v| > delta
        return Or((Atom(Affine(f.lin.out, f.lin.inp, f.lin.const - delta), f.norms, ">"),
                   Atom(Affine(f.lin.out, f.lin.inp, f.lin.const + delta), f.norms, "<")))
    return Const(False)  # an equality cannot hold robustly under a positive error


def relax(f: Formula, delta: float) -> Formula:
    """A weaker formula: each comparison loosened by delta (v > 0 becomes v > -delta, v == 0
    becomes |v| <= delta). A point violating it violates `f` by more than delta, so a solver
    asked for one cannot answer with a tie."""
    if isinstance(f, Const):
        return f
    if isinstance(f, (And, Or)):
        return type(f)(tuple(relax(i, delta) for i in f.items))
    moved = lambda d, op: Atom(Affine(f.lin.out, f.lin.inp, f.lin.const + d), f.norms, op)  # noqa: E731
    if f.op in (">", ">="):
        return moved(delta, f.op)
    if f.op in ("<", "<="):
        return moved(-delta, f.op)
    if f.op == "==":
        return And((moved(delta, ">="), moved(-delta, "<=")))
    return Const(True)  # v != 0 loosened by delta holds everywhere


def value(a: Atom, z: np.ndarray, x: np.ndarray) -> float:
    """The atom's left-hand side lin + sum(norms) at outputs z and inputs x."""
    v = float(a.lin.out[0] @ z + a.lin.inp[0] @ x + a.lin.const[0])
    for t in a.norms:
        vec = t.vec.out @ z + t.vec.inp @ x + t.vec.const
        v += t.weight * float(np.abs(vec).max() if t.p == np.inf else np.abs(vec).sum())
    return v


def holds(f: Formula, z: np.ndarray, x: np.ndarray) -> bool:
    """Exact truth of a formula at one point (for tests and checks)."""
    if isinstance(f, Const):
        return f.value
    if isinstance(f, Atom):
        v = value(f, z, x)
        return {"<=": v <= 0, "<": v < 0, ">=": v >= 0, ">": v > 0, "==": v == 0,
                "!=": v != 0}[f.op]
    if isinstance(f, And):
        return all(holds(i, z, x) for i in f.items)
    if isinstance(f, Or):
        return any(holds(i, z, x) for i in f.items)
    assert_never(f)  # a new query formula fails type checking here until it is evaluated


# --- is a query unchanged by a final softmax? (network/final_layer.py) ---------------

def _row_ok(out: np.ndarray, const: float, kind: str) -> bool:
    if kind == "LogSoftmax":
        return bool(out.sum() == 0)  # c . (z - lse 1) = c . z
    nz = np.flatnonzero(out)
    if len(nz) == 0:
        return True  # no output at all: a constant atom
    return bool(len(nz) == 2 and out[nz[0]] == -out[nz[1]] and const == 0)


def query_order_only(body: Formula, kind: str) -> bool:
    """Is the query's body unchanged when its outputs z go through the final `kind`? For
    Softmax: every atom is c (z_i - z_j) op 0 (no inputs, no norms, constant 0). For
    LogSoftmax: every output row of every atom (its linear part and its norms' vectors) sums
    to zero."""
    if isinstance(body, Const):
        return True
    if isinstance(body, (And, Or)):
        return all(query_order_only(i, kind) for i in body.items)
    if kind == "LogSoftmax":
        return _row_ok(body.lin.out[0], 0.0, kind) and all(
            all(_row_ok(r, 0.0, kind) for r in t.vec.out) for t in body.norms)
    return (not body.norms and not body.lin.uses_inputs()
            and _row_ok(body.lin.out[0], float(body.lin.const[0]), kind))


def dnf(f: Formula, limit: int) -> list[list[Atom]] | None:
    """The formula as a disjunction of conjunctions of atoms ([] for false, [[]] for true,
    constants folded), or None when it has more than `limit` disjuncts."""
    if isinstance(f, Atom):
        return [[f]]
    if isinstance(f, Const):
        return [[]] if f.value else []
    parts: list[list[list[Atom]]] = []
    for item in f.items:
        part = dnf(item, limit)
        if part is None:
            return None
        parts.append(part)
    if isinstance(f, Or):
        out = [conj for part in parts for conj in part]
    elif isinstance(f, And):
        out = [[]]
        for part in parts:
            out = [a + b for a in out for b in part]
            if len(out) > limit:
                return None
    else:
        assert_never(f)  # a new query formula fails type checking here until it is expanded
    return out if len(out) <= limit else None
