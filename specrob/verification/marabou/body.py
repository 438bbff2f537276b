"""The query's input region and its negated body as Marabou constraints: the box (an l_2
ball relaxed to its box), norms as auxiliary variables, the negation in disjunctive normal
form with strict comparisons made non-strict (a counterexample is re-checked by the caller).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from specrob.lang import query as q
from specrob.verification.marabou.encoding import Encoding, NotEncodable

def encode_region(enc: Encoding, region: q.InputRegion) -> np.ndarray:
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


Literal = tuple[str, list[int], list[float], float]  # sum coefs * vars (EQ|LE|GE) scalar


def _norm_terms(enc: Encoding, term: q.NormTerm, z: np.ndarray, x: np.ndarray,
                upper: bool) -> list[tuple[float, int]]:
    """weight * ||vec||_p as (coefficient, variable) addends. Exactly: a_l = |v_l| per row,
    then t = max_l a_l for p = inf, or the sum of the a_l for p = 1. With `upper` (the literal
    only gets harder as the norm grows, and nothing else reads these variables) the epigraph
    t >= |v_l| (two linear inequalities per row) is enough: any solution stays one with t
    lowered to the norm, so the relaxation is exact and needs no case split."""
    if term.p not in (1, math.inf):
        raise NotEncodable(f"a norm term with p = {term.p:g} is not piecewise linear")
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


class Body:
    """Compiles the negated body into literals over the encoding's variables. Strict `<`/`>`
    become `<= -margin`/`>= margin`: with margin 0 (the default) a superset of the real
    violations, so "unsat" stays sound, and `!=` (`< 0 or > 0`) becomes true; a positive margin
    is the caller's choice to ignore violations smaller than it."""

    def __init__(self, enc: Encoding, z: np.ndarray, x: np.ndarray, margin: float):
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

        def literal(kind: str, rhs: float) -> list[Literal]:
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


def _dnf(c, limit: int) -> list[list[Literal]]:
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
        raise NotEncodable(f"the negated body has more than {limit} disjuncts in disjunctive "
                           f"normal form (an Or inside an And inside an Or); Marabou needs "
                           f"one flat disjunction per conjunct")
    return out


def encode_body(body: Body, formula: q.Formula, limit: int) -> bool | None:
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
