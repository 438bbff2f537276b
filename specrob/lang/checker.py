"""AST -> core IR: name resolution, types (index / real / vector), units, scopes; desugaring.

`argmax(v) == i` becomes the margin conjunction `forall j != i: v[i] > v[j]` (docs/design.md §1: CR is
exactly that), `max(v)` a reduction over class indices, `not`/`implies` are pushed into the
atoms (negation normal form). Every error is a located `SpecError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from specrob.lang import ast, ir
from specrob.lang.linearity import nonlinear_reasons
from specrob.lang.walk import varying
from specrob.lang.errors import Source, SpecError, did_you_mean
from specrob.lang.params import (DATA_CONSTANTS, TYPES, Override, check_value, constant_value,
                                 parse_unit, unit_text)

FUNCTIONS = ("f", "norm", "abs", "softmax", "argmax", "max", "min", "onehot",
             "ball", "box", "uniform", "gaussian", "manifold")
SETS = ("ball", "box", "uniform", "gaussian", "manifold")
BUILTIN_NAMES = ("x0", "y", "inf", *DATA_CONSTANTS)
INPUT_UNIT: ir.Unit = (1, 0)
OUTPUT_UNIT: ir.Unit = (0, 1)
ONE: ir.Unit = (0, 0)


@dataclass(frozen=True)
class Typed:
    """A checked term: IR node, kind (real / vector / index / argmax), unit (None: any)."""

    node: ir.Term | ir.IndexTerm
    kind: str
    unit: ir.Unit | None = None
    literal: bool = False  # a number written in the spec: dimensionless under * and /

    @property
    def term(self) -> ir.Term:
        """The node as a term (kind real, vector, norm or path)."""
        return cast(ir.Term, self.node)

    @property
    def index_term(self) -> ir.IndexTerm:
        """The node as a class index (kind index)."""
        return cast(ir.IndexTerm, self.node)


@dataclass(frozen=True)
class Binding:
    kind: str  # param / input / label / index / family
    node: ir.Term | ir.IndexTerm
    unit: ir.Unit | None = None
    ptype: str | None = None




def _bound_names(expr) -> set[str]:
    """Every variable some quantifier of this declaration binds (for 'outside its quantifier')."""
    names: set[str] = set()
    if isinstance(expr, (ast.InputQuant, ast.IndexQuant, ast.Reduce)):
        names.add(expr.var)
    if isinstance(expr, tuple):
        for e in expr:
            names |= _bound_names(e)
    elif isinstance(expr, ast.Expr):
        for f in expr.__dataclass_fields__:
            value = getattr(expr, f)
            if isinstance(value, (ast.Expr, tuple)):
                names |= _bound_names(value)
    return names


class DeclChecker:
    """Checks one property or score declaration against its own scope."""

    def __init__(self, source: Source, params: tuple[ir.ParamDecl, ...], bound: set[str]):
        self.source = source
        self.params = params
        self.bound = bound
        self.scope: dict[str, Binding] = {
            p.name: Binding("param", ir.Param(p.name), p.unit, p.type) for p in params}

    # --- helpers -----------------------------------------------------------------------
    def error(self, message: str, pos, *, expected: str | None = None,
              hint: str | None = None) -> SpecError:
        return self.source.error(message, pos, expected=expected, hint=hint)

    def bind(self, name: str, binding: Binding, pos) -> dict[str, Binding]:
        if name in self.scope or name in BUILTIN_NAMES or name == "f":
            raise self.error(f"'{name}' is already defined here; choose another name", pos)
        saved = dict(self.scope)
        self.scope[name] = binding
        return saved

    def fresh(self) -> str:
        for name in ("j", "k", "i", *(f"j{n}" for n in range(1, 100))):
            if name not in self.scope and name not in self.bound and name not in BUILTIN_NAMES:
                return name
        raise AssertionError("no fresh index name")

    def const(self, node) -> float | None:
        """The value of a term that is constant at check time, else None."""
        if isinstance(node, ir.Const):
            return node.value
        if isinstance(node, ir.Param):
            value = next((p.value for p in self.params if p.name == node.name), None)
            return value if isinstance(value, float) else None
        if isinstance(node, ir.Neg):
            inner = self.const(node.operand)
            return None if inner is None else -inner
        if isinstance(node, ir.Arith) and node.op in ("+", "-", "*", "/"):
            left, right = self.const(node.left), self.const(node.right)
            if left is None or right is None:
                return None
            try:
                value = {"+": lambda: left + right, "-": lambda: left - right,
                         "*": lambda: left * right, "/": lambda: left / right}[node.op]()
            except (ZeroDivisionError, OverflowError):
                return None
            return None if math.isnan(value) else value
        return None

    def norm_value(self, expr: ast.Expr) -> float:
        typed = self.term(expr)
        value = self.const(typed.node)
        if isinstance(typed.node, ir.Param):
            ptype = self.scope[typed.node.name].ptype
            if ptype not in ("norm", "real", "int", "count", "pos", "nonneg"):
                raise self.error(f"'{typed.node.name}' is a {ptype}, not a norm", expr.pos,
                                 expected="1, 2 or inf")
        if value is None or value not in (1.0, 2.0, math.inf):
            shown = "this" if value is None else f"{value:g}"
            raise self.error(f"unknown norm {shown}", expr.pos, expected="1, 2 or inf",
                             hint="norms are l_1, l_2 and l_inf: write 1, 2 or inf")
        return value

    # --- names -------------------------------------------------------------------------
    def name(self, expr: ast.Name) -> Typed:
        b = self.scope.get(expr.id)
        if b is not None:
            if b.kind == "param":
                if b.ptype == "path":
                    return Typed(b.node, "path")
                return Typed(b.node, "norm" if b.ptype == "norm" else "real", b.unit)
            if b.kind == "input":
                return Typed(b.node, "vector", INPUT_UNIT)
            if b.kind == "family":
                return Typed(b.node, "real", b.unit)
            return Typed(b.node, "index")
        if expr.id == "x0":
            return Typed(ir.Input(True), "vector", INPUT_UNIT)
        if expr.id == "y":
            return Typed(ir.Label(), "index")
        if expr.id == "inf":
            return Typed(ir.Const(math.inf), "real", None, literal=True)
        if expr.id in DATA_CONSTANTS:
            return Typed(ir.DataConst(expr.id), "real", INPUT_UNIT if expr.id == "diameter" else None)
        if expr.id in self.bound:
            raise self.error(f"'{expr.id}' is used outside its quantifier", expr.pos,
                             hint=f"move this inside the 'forall {expr.id} ...:' that binds it")
        if expr.id in FUNCTIONS:
            raise self.error(f"'{expr.id}' is a function; call it with arguments", expr.pos,
                             expected=f"{expr.id}(...)")
        visible = [*self.scope, *BUILTIN_NAMES]
        guess = did_you_mean(expr.id, visible)
        raise self.error(f"unknown name '{expr.id}'", expr.pos,
                         expected="a parameter, a quantified variable, x0, y, inf, dim or diameter",
                         hint=f"did you mean '{guess}'?" if guess else
                         "declare it as a parameter: property NAME(" + expr.id + " = ...)")

    # --- terms -------------------------------------------------------------------------
    def term(self, expr: ast.Expr) -> Typed:
        if isinstance(expr, ast.Num):
            return Typed(ir.Const(expr.value), "real", None, literal=True)
        if isinstance(expr, ast.Name):
            return self.name(expr)
        if isinstance(expr, ast.Str):
            return Typed(ir.Text(expr.value), "path")
        if isinstance(expr, ast.Call):
            return self.call(expr)
        if isinstance(expr, ast.Reduce):
            return self.reduce(expr)
        if isinstance(expr, ast.Subscript):
            base = self.real_or_vector(expr.base, want="vector")
            return Typed(ir.Index(base.term, self.index(expr.index)), "real", base.unit)
        if isinstance(expr, ast.BinOp):
            return self.arith(expr)
        if isinstance(expr, ast.Neg):
            inner = self.real_or_vector(expr.operand)
            return Typed(ir.Neg(inner.term), inner.kind, inner.unit, inner.literal)
        if isinstance(expr, ast.Bool):
            raise self.error("expected a number or vector, found a truth value", expr.pos)
        raise self.error("expected a term (a number or a vector), found a formula", expr.pos,
                         hint="comparisons, and/or/not and quantifiers make formulas; "
                              "put them where a formula is expected")

    def real_or_vector(self, expr: ast.Expr, want: str | None = None) -> Typed:
        t = self.term(expr)
        if t.kind == "norm":
            t = Typed(t.node, "real", None)
        if t.kind not in ("real", "vector") or (want and t.kind != want):
            what = {"index": "a class index", "argmax": "an argmax", "path": "a string",
                    "real": "a number", "vector": "a vector"}[t.kind]
            wanted = want and {"real": "a number", "vector": "a vector"}[want] or "a number or vector"
            hint = None
            if want == "vector" and t.kind == "real":
                hint = "index only vectors such as f(x), x or softmax(f(x))"
            if t.kind == "argmax":
                hint = "compare it with a class index: argmax(f(x)) == y"
            raise self.error(f"expected {wanted}, found {what}", expr.pos, hint=hint)
        return t

    def real(self, expr: ast.Expr) -> Typed:
        return self.real_or_vector(expr, want="real")

    def arith(self, expr: ast.BinOp) -> Typed:
        a, b = self.real_or_vector(expr.left), self.real_or_vector(expr.right)
        node = ir.Arith(expr.op, a.term, b.term, expr.pos)
        if expr.op in "+-":
            if a.kind != b.kind:
                raise self.error(f"cannot {'add' if expr.op == '+' else 'subtract'} a "
                                 f"{'vector' if b.kind == 'vector' else 'number'} "
                                 f"{'to' if expr.op == '+' else 'from'} a "
                                 f"{'vector' if a.kind == 'vector' else 'number'}", expr.pos,
                                 hint="index the vector ([i]) or take its norm(...)")
            return Typed(node, a.kind, self.same_unit(a.unit, b.unit, expr), a.literal and b.literal)
        if a.kind == "vector" and b.kind == "vector":
            raise self.error(f"cannot {'multiply' if expr.op == '*' else 'divide'} two vectors",
                             expr.pos, hint="index them ([i]) or take norms first")
        if expr.op == "/" and b.kind == "vector":
            raise self.error("cannot divide by a vector", expr.pos)
        if expr.op == "/" and self.const(b.term) == 0:
            raise self.error("division by zero", expr.right.pos,
                             expected="a divisor that is not 0",
                             hint="check the parameter's value (--set) or the expression")
        # A written number carries any unit: `2 * norm(x - x0, 2)` may stand for an output.
        ua, ub = a.unit, b.unit
        unit = None
        if ua is not None and ub is not None and not (a.literal or b.literal):
            sign = 1 if expr.op == "*" else -1
            unit = (ua[0] + sign * ub[0], ua[1] + sign * ub[1])
        kind = "vector" if "vector" in (a.kind, b.kind) else "real"
        return Typed(node, kind, unit, a.literal and b.literal)

    def same_unit(self, a: ir.Unit | None, b: ir.Unit | None, expr) -> ir.Unit | None:
        if a is not None and b is not None and a != b:
            hint = None
            if {a, b} == {INPUT_UNIT, OUTPUT_UNIT}:
                hint = "relate input and output distances through a parameter with unit output/input"
            raise self.error(f"unit mismatch: [{unit_text(a)}] against [{unit_text(b)}]",
                             expr.pos, hint=hint)
        return a if a is not None else b

    def call(self, expr: ast.Call) -> Typed:
        fn, args = expr.func, expr.args

        def arity(lo: int, hi: int | None = None, shape: str = "") -> None:
            hi = lo if hi is None else hi
            if not lo <= len(args) <= hi:
                raise self.error(f"{fn} takes {lo if lo == hi else f'{lo} to {hi}'} argument"
                                 f"{'s' if hi != 1 else ''}, got {len(args)}", expr.pos,
                                 expected=shape or None)

        if fn == "f":
            arity(1, shape="f(x) or f(x0)")
            arg = self.term(args[0])
            if not isinstance(arg.node, ir.Input):
                raise self.error("the network f is applied to the input variable or the centre",
                                 args[0].pos, expected="f(x) or f(x0)")
            return Typed(ir.Net(arg.node.centre), "vector", OUTPUT_UNIT)
        if fn == "norm":
            arity(1, 2, "norm(vector, p) with p in 1, 2, inf")
            v = self.real_or_vector(args[0], want="vector")
            p = self.norm_value(args[1]) if len(args) == 2 else 2.0
            return Typed(ir.Norm(v.term, p, expr.pos), "real", v.unit)
        if fn == "abs":
            arity(1, shape="abs(number)")
            v = self.real(args[0])
            return Typed(ir.Abs(v.term), "real", v.unit)
        if fn == "softmax":
            arity(1, shape="softmax(f(x))")
            v = self.real_or_vector(args[0], want="vector")
            return Typed(ir.Softmax(v.term), "vector", ONE)
        if fn == "onehot":
            arity(1, shape="onehot(y)")
            return Typed(ir.OneHot(self.index(args[0])), "vector", None)
        if fn == "argmax":
            arity(1, shape="argmax(vector)")
            v = self.real_or_vector(args[0], want="vector")
            if varying(v.term):
                return Typed(v.term, "argmax")
            return Typed(ir.ArgmaxAt(v.term), "index")
        if fn in ("max", "min"):
            if len(args) == 1:
                v = self.real_or_vector(args[0], want="vector")
                var = self.fresh()
                body = ir.Index(v.term, ir.IndexVar(var))
                return Typed(ir.Reduce(fn, var, None, body), "real", v.unit)
            if not args:
                arity(1, None, f"{fn}(vector), {fn}(a, b, ...) or {fn}(t for j != y)")
            items = [self.real(a) for a in args]
            unit = None
            for item in items:
                unit = self.same_unit(unit, item.unit, expr)
            return Typed(ir.Extremum(fn, tuple(i.term for i in items)), "real", unit)
        if fn in SETS:
            where = {"ball": "after 'forall x in' or inside uniform(...)",
                     "box": "in a 'domain:' clause",
                     "uniform": "in a score's Q = ... or a family 'eps ~ uniform(a, b)'",
                     "gaussian": "in a score's Q = ...", "manifold": "in a score's Q = ..."}[fn]
            raise self.error(f"{fn}(...) is not a number; it is allowed only {where}", expr.pos)
        guess = did_you_mean(fn, FUNCTIONS)
        raise self.error(f"unknown function '{fn}'", expr.func_pos,
                         expected="one of " + ", ".join(FUNCTIONS[:8]),
                         hint=f"did you mean '{guess}'?" if guess else None)

    def reduce(self, expr: ast.Reduce) -> Typed:
        if expr.kind not in ("max", "min"):
            guess = did_you_mean(expr.kind, ("max", "min"))
            raise self.error(f"'{expr.kind}(... for {expr.var})' is not a reduction", expr.pos,
                             expected="max(... for j) or min(... for j)",
                             hint=f"did you mean '{guess}'?" if guess else None)
        exclude = self.index(expr.exclude) if expr.exclude is not None else None
        saved = self.bind(expr.var, Binding("index", ir.IndexVar(expr.var)), expr.pos)
        try:
            body = self.real(expr.body)
        finally:
            self.scope = saved
        return Typed(ir.Reduce(expr.kind, expr.var, exclude, body.term), "real", body.unit)

    def index(self, expr: ast.Expr) -> ir.IndexTerm:
        if isinstance(expr, ast.Num):
            if not (math.isfinite(expr.value) and expr.value == int(expr.value)
                    and 0 <= expr.value < 10 ** 9):
                raise self.error(f"class index {expr.text} is not a whole number >= 0", expr.pos)
            return ir.IndexConst(int(expr.value))
        t = self.term(expr)
        if t.kind == "index":
            return t.index_term
        if t.kind == "argmax":
            raise self.error("argmax(f(x)) changes with x and cannot be used as an index",
                             expr.pos, hint="use argmax(f(x0)), or compare: argmax(f(x)) == y")
        raise self.error("expected a class index", expr.pos,
                         expected="y, a quantified index such as j, a whole number, "
                                  "or argmax(f(x0))")

    # --- formulas (built directly in negation normal form) -------------------------------
    def formula(self, expr: ast.Expr, negate: bool = False) -> ir.Formula:
        if isinstance(expr, ast.Logic):
            items = tuple(self.formula(e, negate) for e in expr.items)
            cls = ir.And if (expr.op == "and") != negate else ir.Or
            flat: list[ir.Formula] = []
            for item in items:
                flat.extend(item.items if isinstance(item, cls) else (item,))
            return cls(tuple(flat))
        if isinstance(expr, ast.Not):
            return self.formula(expr.operand, not negate)
        if isinstance(expr, ast.Implies):
            # a implies b == (not a) or b; its negation is a and not b.
            left = self.formula(expr.left, not negate)
            right = self.formula(expr.right, negate)
            cls = ir.And if negate else ir.Or
            flat = []
            for item in (left, right):
                flat.extend(item.items if isinstance(item, cls) else (item,))
            return cls(tuple(flat))
        if isinstance(expr, ast.Bool):
            return ir.Truth(expr.value != negate)
        if isinstance(expr, ast.Compare):
            return self.compare(expr, negate)
        if isinstance(expr, ast.IndexQuant):
            exclude = self.index(expr.exclude) if expr.exclude is not None else None
            saved = self.bind(expr.var, Binding("index", ir.IndexVar(expr.var)), expr.pos)
            try:
                body = self.formula(expr.body, negate)
            finally:
                self.scope = saved
            kind = expr.kind if not negate else {"forall": "exists", "exists": "forall"}[expr.kind]
            return ir.IndexQuant(kind, expr.var, exclude, body)
        if isinstance(expr, ast.InputQuant):
            raise self.error("a property has one input quantifier, at the top of its formula",
                             expr.pos, hint="quantify over class indices with 'forall j: ...'")
        what = "a number" if isinstance(expr, ast.Num) else "a term"
        raise self.error(f"expected a formula, found {what}", expr.pos,
                         expected="a comparison (<= < >= > == !=), and/or/not/implies, "
                                  "or a quantifier")

    def compare(self, expr: ast.Compare, negate: bool) -> ir.Formula:
        left, right = self.term(expr.left), self.term(expr.right)
        op = ir.NEGATE[expr.op] if negate else expr.op
        kinds = {left.kind, right.kind}
        if "argmax" in kinds:
            if expr.op not in ("==", "!="):
                raise self.error(f"argmax is a class index; '{expr.op}' does not compare indices",
                                 expr.op_pos, expected="== or !=")
            if kinds == {"argmax"}:
                raise self.error("both sides of this comparison change with x", expr.pos,
                                 hint="compare with the centre: argmax(f(x)) == argmax(f(x0))")
            vec, other = (left, right) if left.kind == "argmax" else (right, left)
            other_expr = expr.right if left.kind == "argmax" else expr.left
            # a whole number is a class index too (IndexConst); anything else raises the
            # class-index error at the right place
            target = other.index_term if other.kind == "index" else self.index(other_expr)
            # argmax(v) == i  <=>  forall j != i: v[i] > v[j]  (strict: ties are not robust)
            var = self.fresh()
            margin = ir.Compare(">", ir.Index(vec.term, target),
                                ir.Index(vec.term, ir.IndexVar(var)), expr.pos)
            holds = op == "=="
            if holds:
                return ir.IndexQuant("forall", var, target, margin)
            return ir.IndexQuant("exists", var, target,
                                 replace(margin, op=ir.NEGATE[">"]))
        if "index" in kinds:
            if expr.op not in ("==", "!="):
                raise self.error(f"class indices are compared with == or !=, not '{expr.op}'",
                                 expr.op_pos, expected="== or !=")
            return ir.IndexCompare(op, self.index(expr.left), self.index(expr.right), expr.pos)
        for side, e in ((left, expr.left), (right, expr.right)):
            if side.kind == "vector":
                raise self.error("compare numbers, not vectors", e.pos,
                                 hint="take a norm(...) or index the vector with [i]")
            if side.kind == "path":
                raise self.error("a string cannot be compared", e.pos)
        self.same_unit(left.unit, right.unit, expr)
        return ir.Compare(op, left.term, right.term, expr.pos)

    # --- sets ----------------------------------------------------------------------------
    def ball(self, expr: ast.Expr) -> ir.Ball:
        if not (isinstance(expr, ast.Call) and expr.func == "ball"):
            hint = None
            if isinstance(expr, ast.Call):
                guess = did_you_mean(expr.func, ("ball",))
                hint = f"did you mean '{guess}'?" if guess else None
            raise self.error("expected a ball", expr.pos, expected="ball(x0, eps, p)", hint=hint)
        if not 2 <= len(expr.args) <= 3:
            raise self.error(f"ball takes 2 or 3 arguments, got {len(expr.args)}", expr.pos,
                             expected="ball(x0, eps, p) with p in 1, 2, inf")
        centre = expr.args[0]
        if not (isinstance(centre, ast.Name) and centre.id == "x0"):
            raise self.error("a ball is centred at the data point x0", centre.pos,
                             expected="ball(x0, eps, p)")
        radius = self.real(expr.args[1])
        self.same_unit(radius.unit, INPUT_UNIT, expr.args[1])
        value = self.const(radius.term)
        if value is not None and value < 0:
            raise self.error(f"the ball's radius must not be negative (got {value:g})",
                             expr.args[1].pos, expected="a radius >= 0")
        p = self.norm_value(expr.args[2]) if len(expr.args) == 3 else math.inf
        return ir.Ball(radius.term, p)

    def box(self, expr: ast.Expr | None) -> ir.Box:
        if expr is None:
            return ir.UNIT_BOX
        if not (isinstance(expr, ast.Call) and expr.func == "box" and len(expr.args) == 2):
            raise self.error("expected the input domain as a box", expr.pos,
                             expected="box(low, high), e.g. box(0, 1)")
        low, high = (self.real(a) for a in expr.args)
        lo, hi = self.const(low.term), self.const(high.term)
        if lo is not None and hi is not None and not lo < hi:
            raise self.error(f"empty domain: box({lo:g}, {hi:g}) needs low < high", expr.pos)
        return ir.Box(low.term, high.term)

    def centres(self, c: ast.Centres | None) -> ir.Centres:
        if c is None:
            return ir.DEFAULT_CENTRES
        if not c.source_is_file and c.source not in ("train", "test"):
            guess = did_you_mean(c.source, ("train", "test"))
            raise self.error(f"unknown set of centres '{c.source}'", c.pos,
                             expected='train, test or a "file.npz"',
                             hint=f"did you mean '{guess}'?" if guess else None)
        if c.where is not None and c.where != "correct":
            raise self.error(f"unknown filter '{c.where}'", c.where_pos, expected="correct",
                             hint="'where correct' keeps the points the model classifies correctly")
        count = None
        if c.count is not None:
            if c.count_word not in ("points", "point"):
                raise self.error(f"unexpected word '{c.count_word}'", c.word_pos,
                                 expected="points, as in: centres: test, 100 points")
            if not (math.isfinite(c.count.value) and c.count.value == int(c.count.value)
                    and 1 <= c.count.value <= 10 ** 12):
                raise self.error(f"a point count is a whole number >= 1, not {c.count.text}",
                                 c.count.pos)
            count = int(c.count.value)
        return ir.Centres(c.source, c.source_is_file, c.where == "correct", count)


def check_params(params: tuple[ast.Param, ...], sources: dict[str, Source], default: Source,
                 overrides: dict[str, Override]) -> tuple[ir.ParamDecl, ...]:
    """Parameter declarations -> their table, with types and values checked."""
    out: list[ir.ParamDecl] = []
    seen: set[str] = set()
    for p in params:
        source = sources.get(p.name, default)
        if p.name in seen:
            raise source.error(f"parameter '{p.name}' is declared twice", p.pos)
        if p.name in BUILTIN_NAMES or p.name in ("x", "f"):
            raise source.error(f"'{p.name}' is built in and cannot be a parameter", p.pos)
        seen.add(p.name)
        ptype = p.type.name if p.type else None
        if p.type is not None and p.type.name not in TYPES:
            guess = did_you_mean(p.type.name, TYPES)
            raise default.error(f"unknown type '{ptype}'", p.type.pos,
                                expected=", ".join(TYPES),
                                hint=f"did you mean '{guess}'?" if guess else None)
        unit = parse_unit(p.type, default) if p.type else None
        if p.default is None and p.name not in overrides:
            raise source.error(f"parameter '{p.name}' has no value", p.pos,
                               hint=f"give it a default ({p.name} = ...) or --set {p.name}=...")
        value = None
        if p.default is not None:
            value = constant_value(p.default)
            if value is None:
                raise source.error("a parameter's value is a number, inf, dim, diameter or a "
                                   '"string"', p.default.pos)
        if ptype is None:
            ptype = "path" if isinstance(value, str) else "real"
        ov = overrides.get(p.name)
        if ov is not None:
            ov.used = True

            def fail_override(message, expected, ov=ov):
                raise ov.error(message, expected)

            value = check_value(p.name, ptype, ov.value, fail_override)
            if ptype == "path" and isinstance(value, str) and not Path(value).is_absolute():
                # a --set path is the user's, relative to where they run; a path written in
                # the spec is relative to the spec's folder
                value = str(Path(value).resolve())
        else:
            assert p.default is not None  # no default and no override was refused above
            pos = p.default.pos

            def fail(message, expected, pos=pos, source=source):
                raise source.error(message, pos, expected=expected)

            value = check_value(p.name, ptype, value, fail)
        out.append(ir.ParamDecl(p.name, ptype, unit, value, p.pos))
    return tuple(out)


def check_property(decl: ast.PropertyDef, source: Source, params: tuple[ir.ParamDecl, ...],
                   body_source: Source | None = None) -> ir.Property:
    ck = DeclChecker(source, params, _bound_names(decl.body))
    body = decl.body
    if not isinstance(body, ast.InputQuant):
        raise source.error("a property starts with its input quantifier", body.pos,
                           expected="forall x in ball(x0, eps, p): ...")
    ball = ck.ball(body.set)
    domain = ck.box(decl.domain)
    ck.bind(body.var, Binding("input", ir.Input(False)), body.var_pos)
    formula = ck.formula(body.body)
    return ir.Property(decl.name, params, ck.centres(decl.centres), domain, body.var, ball,
                       formula, nonlinear_reasons(formula), decl.pos,
                       body_source if body_source is not None else source)


def check_score(decl: ast.ScoreDef, source: Source, params: tuple[ir.ParamDecl, ...],
                spec_dir: Path | None) -> ir.Score:
    ck = DeclChecker(source, params, set())
    families = []
    for fam in decl.families:
        dist = fam.dist
        if not (isinstance(dist, ast.Call) and dist.func == "uniform" and len(dist.args) == 2):
            raise source.error("a parameter family is drawn uniformly from an interval",
                               dist.pos, expected=f"{fam.var} ~ uniform(low, high)")
        low, high = ck.real(dist.args[0]), ck.real(dist.args[1])
        lo, hi = ck.const(low.term), ck.const(high.term)
        if lo is not None and hi is not None and lo > hi:
            raise source.error(f"empty interval uniform({lo:g}, {hi:g})", dist.pos)
        ck.bind(fam.var, Binding("family", ir.Param(fam.var), low.unit or high.unit), fam.pos)
        families.append(ir.Family(fam.var, low.term, high.term))
    settings: dict[str, ast.Setting] = {}
    for s in decl.settings:
        if s.name not in ("Q", "H", "G"):
            guess = did_you_mean(s.name, ("Q", "H", "G"))
            raise source.error(f"unknown score setting '{s.name}'", s.pos,
                               expected="Q = kernel, H = indicator|id, G = 1|density|density / eps",
                               hint=f"did you mean '{guess}'?" if guess else None)
        if s.name in settings:
            raise source.error(f"{s.name} is set twice", s.pos)
        if s.given is not None and s.name != "Q":
            raise source.error("only the kernel Q can be conditioned with 'given'", s.given_pos)
        if s.given is not None and s.given != "label":
            raise source.error(f"unknown condition '{s.given}'", s.given_pos,
                               expected="given label (Q conditioned on Y(x') = Y(x0))")
        settings[s.name] = s
    for required in ("Q", "H"):
        if required not in settings:
            raise source.error(f"score '{decl.name}' has no {required}", decl.pos,
                               expected="Q = uniform(ball(x0, eps, 2)) and H = indicator|id")
    kernel = _kernel(ck, settings["Q"].value, spec_dir)
    h = settings["H"].value
    if not (isinstance(h, ast.Name) and h.id in ("indicator", "id")):
        guess = did_you_mean(h.id, ("indicator", "id")) if isinstance(h, ast.Name) else None
        raise source.error("unknown H", h.pos, expected="indicator or id",
                           hint=f"did you mean '{guess}'?" if guess else None)
    weight = _weight(ck, settings["G"].value if "G" in settings else None)
    return ir.Score(decl.name, params, ck.centres(decl.centres), ck.box(decl.domain), kernel,
                    settings["Q"].given == "label", h.id, weight, tuple(families), decl.pos)


def _kernel(ck: DeclChecker, q: ast.Expr, spec_dir: Path | None) -> ir.Kernel:
    kinds = ("uniform", "gaussian", "manifold")
    if not isinstance(q, ast.Call) or q.func not in kinds:
        guess = did_you_mean(q.func, kinds) if isinstance(q, ast.Call) else None
        raise ck.error("unknown kernel Q", q.pos,
                       expected='uniform(ball(x0, eps, p)), gaussian(x0, sigma) or '
                                'manifold("generator.py", sigma[, ball(x0, eps, p)])',
                       hint=f"did you mean '{guess}'?" if guess else None)
    if q.func == "uniform":
        if len(q.args) != 1:
            raise ck.error("uniform takes one ball", q.pos, expected="uniform(ball(x0, eps, p))")
        return ir.UniformBall(ck.ball(q.args[0]))
    if q.func == "gaussian":
        if len(q.args) != 2 or not (isinstance(q.args[0], ast.Name) and q.args[0].id == "x0"):
            raise ck.error("a gaussian kernel is centred at x0", q.pos,
                           expected="gaussian(x0, sigma)")
        sigma = ck.real(q.args[1])
        _nonneg(ck, sigma, q.args[1], "sigma")
        return ir.Gaussian(sigma.term)
    if not 2 <= len(q.args) <= 3:
        raise ck.error("manifold takes a generator module and sigma", q.pos,
                       expected='manifold("generator.py", sigma[, ball(x0, eps, p)])')
    gen = ck.term(q.args[0])
    if gen.kind != "path":
        raise ck.error("the on-manifold generator is a Python module's path", q.args[0].pos,
                       expected='"autoencoder.py" or a path parameter')
    if isinstance(gen.term, ir.Text) and not gen.term.value.endswith(".py"):
        raise ck.error("the generator must be a Python module (.py)", q.args[0].pos,
                       expected='"autoencoder.py"')
    sigma = ck.real(q.args[1])
    _nonneg(ck, sigma, q.args[1], "sigma")
    ball = ck.ball(q.args[2]) if len(q.args) == 3 else None
    return ir.Manifold(gen.term, sigma.term, ball)


def _nonneg(ck: DeclChecker, t: Typed, expr: ast.Expr, what: str) -> None:
    value = ck.const(t.node)
    if value is not None and value < 0:
        raise ck.error(f"{what} must not be negative (got {value:g})", expr.pos)


def _weight(ck: DeclChecker, g: ast.Expr | None) -> ir.Weight:
    if g is None or (isinstance(g, ast.Num) and g.value == 1):
        return ir.Weight(False)
    if isinstance(g, ast.Name) and g.id == "density":
        return ir.Weight(True)
    if (isinstance(g, ast.BinOp) and g.op == "/" and isinstance(g.left, ast.Name)
            and g.left.id == "density" and isinstance(g.right, ast.Name)):
        ck.real(g.right)  # resolves the name (a family variable or a parameter)
        return ir.Weight(True, g.right.id)
    guess = did_you_mean(g.id, ("density",)) if isinstance(g, ast.Name) else None
    raise ck.error("unknown weight G", g.pos, expected="1, density or density / eps",
                   hint=f"did you mean '{guess}'?" if guess else None)
