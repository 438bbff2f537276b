"""Core IR formulas -> per-sample values of a logic; negation in negation normal form."""
from __future__ import annotations

import math

import torch

from specrob.lang import ir
from specrob.logic.logics import Boolean, Logic
from specrob.logic.terms import Evaluator, Points, depth


def negate(f: ir.Formula) -> ir.Formula:
    """not f, again in negation normal form."""
    if isinstance(f, ir.Compare):
        return ir.Compare(ir.NEGATE[f.op], f.left, f.right, f.pos)
    if isinstance(f, ir.IndexCompare):
        return ir.IndexCompare(ir.NEGATE[f.op], f.left, f.right, f.pos)
    if isinstance(f, ir.Truth):
        return ir.Truth(not f.value)
    if isinstance(f, ir.And):
        return ir.Or(tuple(negate(i) for i in f.items))
    if isinstance(f, ir.Or):
        return ir.And(tuple(negate(i) for i in f.items))
    kind = "exists" if f.kind == "forall" else "forall"
    return ir.IndexQuant(kind, f.var, f.exclude, negate(f.body))


def evaluate(f: ir.Formula, points: Points, logic: Logic) -> torch.Tensor:
    """The logic's value of f at every sample: shape (B,)."""
    ev = Evaluator(points, depth(f))
    value = _formula(f, ev, logic)
    return value.expand((ev.batch,) + (1,) * ev.axes).reshape(ev.batch)


def _formula(f: ir.Formula, ev: Evaluator, logic: Logic) -> torch.Tensor:
    if isinstance(f, ir.Compare):
        return logic.atom(f.op, ev.term(f.left), ev.term(f.right))
    if isinstance(f, ir.IndexCompare):
        a, b = ev.index(f.left), ev.index(f.right)
        holds = a == b if f.op == "==" else a != b
        return logic.crisp(holds.expand(torch.broadcast_shapes(holds.shape, (ev.batch,)
                                                               + (1,) * ev.axes)))
    if isinstance(f, ir.Truth):
        full = torch.full((ev.batch,) + (1,) * ev.axes, f.value, device=ev.p.fx.device)
        return logic.crisp(full)
    if isinstance(f, (ir.And, ir.Or)):
        values = [_formula(i, ev, logic) for i in f.items]
        return logic.conj(values) if isinstance(f, ir.And) else logic.disj(values)
    # index quantifier: over all classes on its own axis; the excluded class is neutral
    axis, values, excluded = ev.over_classes(f.var, f.exclude, lambda: _formula(f.body, ev, logic))
    neutral = logic.true if f.kind == "forall" else logic.false
    if excluded is not None:
        values = values.masked_fill(excluded, neutral)
    return logic.all(values, axis) if f.kind == "forall" else logic.any(values, axis)


def holds(f: ir.Formula, points: Points) -> torch.Tensor:
    """Crisp satisfaction per sample (bool, shape (B,))."""
    return evaluate(f, points, Boolean())


def resolve_params(decl: ir.Property | ir.Score, input_dim: int) -> dict[str, float]:
    """Parameter values with the data constants filled in (dim = n, diameter = sqrt(n) times
    the width of the domain box)."""
    values: dict[str, float] = {"dim": float(input_dim)}
    width = 1.0
    if isinstance(decl.domain.low, ir.Const) and isinstance(decl.domain.high, ir.Const):
        width = decl.domain.high.value - decl.domain.low.value
    values["diameter"] = width * math.sqrt(input_dim)
    for p in decl.params:
        if isinstance(p.value, ir.DataConst):
            values[p.name] = values[p.value.name]
        elif isinstance(p.value, float):
            values[p.name] = p.value
    return values


def constant(t, params: dict[str, float]) -> float:
    """A term without x, f or indices (a radius, a box bound) as a number."""
    if isinstance(t, ir.Const):
        return t.value
    if isinstance(t, (ir.Param, ir.DataConst)):
        return params[t.name]
    if isinstance(t, ir.Neg):
        return -constant(t.operand, params)
    if isinstance(t, ir.Arith):
        a, b = constant(t.left, params), constant(t.right, params)
        return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else math.inf}[t.op]
    raise ValueError(f"not a constant: {t!r}")
