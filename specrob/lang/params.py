"""Parameter types, units and values: declarations, defaults and `--set` overrides."""
from __future__ import annotations

import math
from dataclasses import dataclass

from specrob.lang import ast, ir
from specrob.lang.errors import Source, SpecError, did_you_mean

# type name -> (description of valid values, predicate on a float value)
NUMERIC_TYPES = {
    "real": ("a number", lambda v: not math.isnan(v)),
    "nonneg": ("a number >= 0", lambda v: v >= 0),
    "pos": ("a number > 0", lambda v: v > 0),
    "prob": ("a number strictly between 0 and 1", lambda v: 0 < v < 1),
    "int": ("a whole number", lambda v: math.isfinite(v) and v == int(v)),
    "count": ("a whole number >= 1", lambda v: math.isfinite(v) and v == int(v) and v >= 1),
    "norm": ("a norm: 1, 2 or inf", lambda v: v in (1.0, 2.0, math.inf)),
}
TYPES = (*NUMERIC_TYPES, "path")
DATA_CONSTANTS = ("diameter", "dim")  # known once the data is: sqrt(n) and n


def unit_text(unit: ir.Unit | None) -> str:
    if unit is None:
        return "any"
    names = {(1, 0): "input", (0, 1): "output", (-1, 1): "output/input",
             (1, -1): "input/output", (0, 0): "1", (-1, 0): "1/input", (0, -1): "1/output"}
    return names.get(unit, f"input^{unit[0]} output^{unit[1]}")


def parse_unit(ptype: ast.PType, source: Source) -> ir.Unit | None:
    if ptype.unit is None:
        return None
    num, den = ptype.unit

    def one(name: str) -> ir.Unit:
        if name == "1":
            return (0, 0)
        if name in ir.UNIT_NAMES:
            return ir.UNIT_NAMES[name]
        guess = did_you_mean(name, ir.UNIT_NAMES)
        raise source.error(f"unknown unit '{name}'", ptype.pos,
                           expected="input, output, output/input, 1/input or 1",
                           hint=f"did you mean '{guess}'?" if guess else None)

    a = one(num)
    if den is None:
        return a
    b = one(den)
    return (a[0] - b[0], a[1] - b[1])


def constant_value(expr: ast.Expr) -> float | str | ir.DataConst | None:
    """The value of a default or keyword argument: a number, inf, dim, diameter or a string."""
    if isinstance(expr, ast.Num):
        return expr.value
    if isinstance(expr, ast.Str):
        return expr.value
    if isinstance(expr, ast.Name) and expr.id == "inf":
        return math.inf
    if isinstance(expr, ast.Name) and expr.id in DATA_CONSTANTS:
        return ir.DataConst(expr.id)
    if isinstance(expr, ast.Neg):
        inner = constant_value(expr.operand)
        if isinstance(inner, float):
            return -inner
    return None


def check_value(name: str, ptype: str, value, fail) -> float | str | ir.DataConst:
    """Validate a parameter value against its type; `fail(message, expected)` raises."""
    if ptype == "path":
        if not isinstance(value, str):
            fail(f"parameter '{name}' is a path and needs a string", 'a "file" name')
        return value
    if isinstance(value, ir.DataConst):
        if ptype in ("int", "count", "norm"):
            fail(f"'{value.name}' is not a valid value for {name}: {ptype}",
                 NUMERIC_TYPES[ptype][0])
        return value
    if not isinstance(value, float):
        fail(f"parameter '{name}' needs a number, not a string", NUMERIC_TYPES[ptype][0])
    text, ok = NUMERIC_TYPES[ptype]
    if not ok(value):
        shown = _show(value)
        if ptype == "norm":
            fail(f"unknown norm {shown} for '{name}'", "1, 2 or inf")
        if ptype in ("nonneg", "pos") and value < 0:
            fail(f"'{name}' must not be negative (got {shown})", text)
        fail(f"{name} = {shown} is out of range for type {ptype}", text)
    return value


def _show(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


@dataclass
class Override:
    """A `--set name=value` (or a keyword of `specrob.load`)."""

    name: str
    value: float | str
    text: str  # as the user wrote it, for errors
    used: bool = False

    def error(self, message: str, expected: str | None = None, hint: str | None = None):
        col = len(self.name) + 2
        return SpecError(message, path="--set", line=1, col=col,
                         end_col=len(self.text) + 1, source_line=self.text,
                         expected=expected, hint=hint)


def parse_override(text: str) -> Override:
    """`name=value` from the command line; the value is a number, inf or a string."""
    if "=" not in text:
        raise SpecError("--set takes name=value", path="--set", line=1, col=1,
                        end_col=len(text) + 1, source_line=text, expected="name=value",
                        hint="for example --set eps=0.05")
    name, raw = (s.strip() for s in text.split("=", 1))
    value = to_value(raw)
    if isinstance(value, float) and (math.isnan(value) or
                                     (math.isinf(value) and raw.lstrip("+-") != "inf")):
        col = len(name) + 2
        raise SpecError(f"'{raw}' is not a usable number" + (
            " (it overflows to infinity)" if math.isinf(value) else ""), path="--set", line=1,
            col=col, end_col=len(text) + 1, source_line=text,
            expected="a finite number, or inf", hint=f"for example --set {name}=0.05")
    return Override(name, value, text)


def to_value(raw) -> float | str:
    if isinstance(raw, bool):
        raise TypeError("a parameter value is a number or a string")
    if isinstance(raw, (int, float)):
        return float(raw)
    text = str(raw).strip()
    if text in ("inf", "+inf"):
        return math.inf
    if text == "-inf":
        return -math.inf
    try:
        return float(text)
    except ValueError:
        return text


def override_from_api(name: str, value) -> Override:
    try:
        return Override(name, to_value(value), f"{name}={value}")
    except TypeError as exc:
        raise SpecError(f"{name}: {exc}", path="specrob.load", line=1, col=1) from None


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
