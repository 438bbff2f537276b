"""Piecewise linearity of a property's body: its comparison atoms, and why it is not piecewise
linear in x and f(x) (softmax, l_2 norms, products and quotients of terms that change with x).
What each back end does with a property is the back end's own answer (`supports`), gathered
by `specrob.api.backends`.
"""
from __future__ import annotations

from typing import assert_never

from specrob.lang import ir
from specrob.lang.walk import children, varying


def _term_nonlinear(t, out: list[str]) -> None:
    from specrob.lang.printer import term as show
    if isinstance(t, ir.Softmax) and varying(t.vector):
        out.append(f"softmax({show(t.vector)}) is not piecewise linear")
        return
    if isinstance(t, ir.Norm) and t.p == 2 and varying(t.vector):
        out.append(f"the l_2 norm {show(t)} is not piecewise linear")
        return
    if isinstance(t, ir.Arith) and t.op == "*" and varying(t.left) and varying(t.right):
        out.append(f"{show(t)} multiplies two terms that change with x")
    if isinstance(t, ir.Arith) and t.op == "/" and varying(t.right):
        out.append(f"{show(t)} divides by a term that changes with x")
    for child in children(t):
        for node in (child if isinstance(child, tuple) else (child,)):
            _term_nonlinear(node, out)


def atoms(f: ir.Formula) -> list[ir.Compare]:
    if isinstance(f, ir.Compare):
        return [f]
    if isinstance(f, (ir.And, ir.Or)):
        return [a for item in f.items for a in atoms(item)]
    if isinstance(f, ir.IndexQuant):
        return atoms(f.body)
    if isinstance(f, (ir.IndexCompare, ir.Truth)):
        return []
    assert_never(f)  # a new IR formula fails type checking here until its atoms are listed


def nonlinear_reasons(body: ir.Formula) -> tuple[str, ...]:
    """Why the body is not piecewise linear in x and f(x); empty when it is."""
    out: list[str] = []
    for atom in atoms(body):
        _term_nonlinear(atom.left, out)
        _term_nonlinear(atom.right, out)
    return tuple(dict.fromkeys(out))
