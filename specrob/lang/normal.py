"""sympy normal forms of atoms and their linear forms over output (and input) coordinates.

Each atom `l op r` is rewritten as `V op C`: V collects the terms that change with x (through
x or f(x)), C the rest (parameters, constants, the centre's outputs f(x0)). When V is affine in
the coordinates f(x)[i] and x[i], the atom has a `LinearForm`; the Marabou and VNN-LIB back
ends encode those directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import assert_never

import sympy
from sympy.printing.str import StrPrinter

from specrob.lang import ir
from specrob.lang.linearity import atoms
from specrob.lang.walk import is_vector as _is_vector
from specrob.lang.walk import varying
from specrob.lang.printer import index as show_index
from specrob.lang.printer import norm_text
from specrob.lang.printer import term as show_term


class _Printer(StrPrinter):
    def _print_Infinity(self, expr):
        return "inf"

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Abs(self, expr):
        return f"abs({self._print(expr.args[0])})"

    def _print_Max(self, expr):
        return f"max({', '.join(self._print(a) for a in expr.args)})"

    def _print_Min(self, expr):
        return f"min({', '.join(self._print(a) for a in expr.args)})"

    def _print_Function(self, expr):
        if expr.func.__name__ == "norm":
            vec, p = expr.args
            return f"norm({self._print(vec)}, {self._print(p)})"
        return super()._print_Function(expr)


def show(expr: sympy.Expr) -> str:
    return _Printer({"order": "none"}).doprint(expr)


_norm = sympy.Function("norm")


@dataclass(frozen=True)
class LinearForm:
    """sum(coeff * coordinate) op rhs; coordinates like `f(x)[y]`, `x[3]`."""

    terms: tuple[tuple[str, str], ...]
    op: str
    rhs: str

    def __str__(self) -> str:
        parts = []
        for coord, coeff in self.terms:
            if coeff == "1":
                parts.append(f"+ {coord}")
            elif coeff == "-1":
                parts.append(f"- {coord}")
            elif coeff.startswith("-"):
                parts.append(f"- {coeff[1:]}*{coord}")
            else:
                parts.append(f"+ {coeff}*{coord}")
        text = " ".join(parts).removeprefix("+ ")
        if text.startswith("- "):
            text = "-" + text[2:]
        return f"{text} {self.op} {self.rhs}"


@dataclass(frozen=True)
class NormalAtom:
    """An atom in normal form; `linear` holds its linear forms (a conjunction: an l_inf norm
    bound `norm(v, inf) <= c` is `v[i] <= c and -v[i] <= c` for every coordinate i)."""

    text: str
    linear: tuple[LinearForm, ...]
    why_not_linear: str | None = None


class _ToSympy:
    """IR terms -> sympy; opaque pieces (norms of vectors, reductions) become symbols."""

    def __init__(self, var: str):
        self.var = var
        self.varying: set[sympy.Basic] = set()
        self.coords: set[sympy.Symbol] = set()

    def symbol(self, name: str, is_varying: bool, coord: bool = False) -> sympy.Symbol:
        s = sympy.Symbol(name, real=True)
        if is_varying:
            self.varying.add(s)
            if coord:
                self.coords.add(s)
        return s

    def vector(self, t) -> sympy.Expr:
        if isinstance(t, ir.Arith):
            a, b = self.scalar_or_vector(t.left), self.scalar_or_vector(t.right)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[t.op]
        if isinstance(t, ir.Neg):
            return -self.vector(t.operand)
        if isinstance(t, ir.Softmax):
            return self.symbol(f"softmax({show(self.vector(t.vector))})", varying(t))
        return self.symbol(show_term(t, self.var), varying(t))

    def scalar_or_vector(self, t) -> sympy.Expr:
        return self.vector(t) if _is_vector(t) else self.scalar(t)

    def indexed(self, vec, i: ir.IndexTerm) -> sympy.Expr:
        """vec[i], distributed over the linear structure of vec."""
        if isinstance(vec, ir.Arith):
            if vec.op in "+-":
                a, b = self.indexed(vec.left, i), self.indexed(vec.right, i)
                return a + b if vec.op == "+" else a - b
            if _is_vector(vec.left):
                a = self.indexed(vec.left, i)
                b = self.scalar(vec.right)
                return a * b if vec.op == "*" else a / b
            return self.scalar(vec.left) * self.indexed(vec.right, i)
        if isinstance(vec, ir.Neg):
            return -self.indexed(vec.operand, i)
        idx = show_index(i, self.var)
        if isinstance(vec, ir.Softmax):
            inner = show(self.vector(vec.vector))
            return self.symbol(f"softmax({inner})[{idx}]", varying(vec))
        base = show_term(vec, self.var)
        coord = isinstance(vec, (ir.Net, ir.Input))
        return self.symbol(f"{base}[{idx}]", varying(vec), coord)

    def scalar(self, t) -> sympy.Expr:
        if isinstance(t, ir.Const):
            v = t.value
            if v == int(v) if v not in (float("inf"), float("-inf")) else False:
                return sympy.Integer(int(v))
            return sympy.oo if v == float("inf") else sympy.Float(v)
        if isinstance(t, (ir.Param, ir.DataConst)):
            return sympy.Symbol(t.name, real=True)
        if isinstance(t, ir.Index):
            return self.indexed(t.vector, t.index)
        if isinstance(t, ir.Arith):
            a, b = self.scalar(t.left), self.scalar(t.right)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b}[t.op]
        if isinstance(t, ir.Neg):
            return -self.scalar(t.operand)
        if isinstance(t, ir.Norm):
            expr = _norm(self.vector(t.vector), sympy.oo if t.p == ir.INF else int(t.p))
            if varying(t):
                self.varying.add(expr)
            return expr
        if isinstance(t, ir.Abs):
            return sympy.Abs(self.scalar(t.operand))
        if isinstance(t, ir.Extremum):
            items = [self.scalar(i) for i in t.items]
            return sympy.Max(*items) if t.kind == "max" else sympy.Min(*items)
        if isinstance(t, ir.Reduce):
            body = show(self.scalar(t.body))
            rng = t.var + (f" != {show_index(t.exclude, self.var)}" if t.exclude else "")
            return self.symbol(f"{t.kind}({body} for {rng})", varying(t))
        raise TypeError(f"not a scalar term: {t!r}")


def _is_varying(expr: sympy.Basic, conv: _ToSympy) -> bool:
    if expr in conv.varying:
        return True
    return any(_is_varying(a, conv) for a in expr.args)


def normal_atom(atom: ir.Compare, var: str = "x") -> NormalAtom:
    conv = _ToSympy(var)
    diff = sympy.expand(conv.scalar(atom.left) - conv.scalar(atom.right))
    lhs_terms, rhs_terms = [], []
    for term in sympy.Add.make_args(diff):
        (lhs_terms if _is_varying(term, conv) else rhs_terms).append(term)
    # positive terms first: `norm(f(x) - f(x0), inf) - L*norm(x - x0, inf) <= 0`
    lhs_terms.sort(key=lambda t: t.could_extract_minus_sign())
    lhs = sympy.Add(*lhs_terms, evaluate=False) if lhs_terms else sympy.Integer(0)
    rhs = -sympy.Add(*rhs_terms)
    text = f"{_join(lhs_terms)} {atom.op} {show(rhs)}"
    linear, why = _linear_form(lhs, rhs, atom.op, conv)
    if linear is None:
        expanded = _inf_norm_pieces(atom)
        if expanded:
            forms = [normal_atom(piece, var).linear for piece in expanded]
            if all(forms):
                return NormalAtom(text, tuple(f for fs in forms for f in fs), None)
    return NormalAtom(text, (linear,) if linear else (), why)


def _join(terms: list[sympy.Expr]) -> str:
    if not terms:
        return "0"
    out = show(terms[0])
    for t in terms[1:]:
        out += f" - {show(-t)}" if t.could_extract_minus_sign() else f" + {show(t)}"
    return out


def _inf_norm_pieces(atom: ir.Compare) -> list[ir.Compare]:
    """norm(v, inf) <= c  ->  [v[i] <= c, -v[i] <= c]  (i ranges over all coordinates)."""
    for big, small, ops in ((atom.left, atom.right, ("<=", "<")),
                            (atom.right, atom.left, (">=", ">"))):
        if atom.op in ops and isinstance(big, ir.Norm) and big.p == ir.INF:
            op = "<=" if atom.op in ("<=", ">=") else "<"
            coord = ir.Index(big.vector, ir.IndexVar("i"))
            return [ir.Compare(op, coord, small), ir.Compare(op, ir.Neg(coord), small)]
    return []


def _linear_form(lhs, rhs, op: str, conv: _ToSympy) -> tuple[LinearForm | None, str | None]:
    terms: dict[str, sympy.Expr] = {}
    for term in sympy.Add.make_args(lhs):
        if term == 0:
            continue
        coeff, rest = term.as_independent(*conv.varying, as_Add=False)
        if rest not in conv.coords:
            return None, f"{show(term)} is not linear in the coordinates of x and f(x)"
        terms[show(rest)] = terms.get(show(rest), 0) + coeff
    if not terms:
        return None, "does not depend on x"
    return LinearForm(tuple((k, show(v)) for k, v in terms.items()), op, show(rhs)), None


def normal_formula(f: ir.Formula, var: str = "x") -> str:
    """The body with every atom in normal form (connectives and quantifiers unchanged)."""
    if isinstance(f, ir.Compare):
        return _cached_atom(f, var).text
    if isinstance(f, (ir.And, ir.Or)):
        word = " and " if isinstance(f, ir.And) else " or "
        parts = []
        for item in f.items:
            text = normal_formula(item, var)
            parts.append(f"({text})" if isinstance(item, (ir.And, ir.Or, ir.IndexQuant)) else text)
        return word.join(parts)
    if isinstance(f, ir.IndexQuant):
        rng = f.var + (f" != {show_index(f.exclude, var)}" if f.exclude is not None else "")
        return f"{f.kind} {rng}: {normal_formula(f.body, var)}"
    if isinstance(f, (ir.IndexCompare, ir.Truth)):
        from specrob.lang.printer import formula
        return formula(f, var)
    assert_never(f)  # a new IR formula fails type checking here until it is normalised


@cache
def _cached_atom(atom: ir.Compare, var: str) -> NormalAtom:
    return normal_atom(atom, var)


def linear_forms(prop: ir.Property) -> list[NormalAtom]:
    """Every atom of the property with its linear form (None where there is none)."""
    return [_cached_atom(a, prop.var) for a in atoms(prop.body)]


__all__ = ["LinearForm", "NormalAtom", "normal_atom", "normal_formula", "linear_forms",
           "norm_text"]
