"""Core IR formulas -> per-sample values of a logic, compiled once; negation in NNF."""
from __future__ import annotations

from typing import assert_never

import torch

from specrob.lang import ir
from specrob.logic.logics import Boolean, Logic
from specrob.logic.terms import Env, Fn, Points, TermCompiler, depth


class FormulaCompiler:
    """Formulas -> closures computing a logic's value; formulas compiled by one compiler
    share their terms' values within one evaluation (`Env`)."""

    def __init__(self):
        self.terms = TermCompiler()
        self.axes = 0

    def compile(self, f: ir.Formula, logic: Logic) -> Fn:
        self.axes = max(self.axes, depth(f))
        return self._formula(f, logic, {})

    def _formula(self, f: ir.Formula, logic: Logic, scope: dict[str, int]) -> Fn:
        if isinstance(f, ir.Compare):
            a, b = self.terms.term(f.left, scope), self.terms.term(f.right, scope)
            op = f.op
            return lambda env: logic.atom(op, a(env), b(env))
        if isinstance(f, ir.IndexCompare):
            a, b = self.terms.index(f.left, scope), self.terms.index(f.right, scope)
            equal = f.op == "=="

            def crisp(env):
                holds = (a(env) == b(env)) if equal else (a(env) != b(env))
                return logic.crisp(holds)
            return crisp
        if isinstance(f, ir.Truth):
            value = f.value
            return lambda env: logic.crisp(torch.tensor(value, device=env.p.fx.device))
        if isinstance(f, (ir.And, ir.Or)):
            items = [self._formula(i, logic, scope) for i in f.items]
            fold = logic.conj if isinstance(f, ir.And) else logic.disj
            return lambda env: fold([item(env) for item in items])
        if isinstance(f, ir.IndexQuant):
            over = self.terms.over_classes(f.var, f.exclude, scope,
                                           lambda node, sc: self._formula(node, logic, sc))
            body = over.body(f.body)
            forall = f.kind == "forall"
            neutral = logic.all_neutral if forall else logic.any_neutral

            def quantifier(env):
                values, excluded = over(env, body)
                if excluded is not None:
                    values = values.masked_fill(excluded, neutral)
                return logic.all(values, over.axis) if forall else logic.any(values, over.axis)
            return quantifier
        assert_never(f)  # a new IR formula fails type checking here until it is compiled

    def run(self, fns: list[Fn], points: Points) -> list[torch.Tensor]:
        """Evaluate compiled formulas on one batch (shared terms computed once): (B,) each."""
        env = Env(points, self.axes)
        self.last_memo = env.memo  # the terms' values, for locating a non-finite one
        full = (env.batch,) + (1,) * env.axes
        return [fn(env).expand(full).reshape(env.batch) for fn in fns]


def evaluate(f: ir.Formula, points: Points, logic: Logic) -> torch.Tensor:
    """The logic's value of f at every sample, shape (B,) (compiles f each call)."""
    compiler = FormulaCompiler()
    return compiler.run([compiler.compile(f, logic)], points)[0]


def holds(f: ir.Formula, points: Points) -> torch.Tensor:
    """Crisp satisfaction per sample (bool, shape (B,))."""
    return evaluate(f, points, Boolean())


__all__ = ["FormulaCompiler", "evaluate", "holds"]
