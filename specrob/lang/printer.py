"""Core IR -> .rspec text. Parsing and checking the text gives back the same IR."""
from __future__ import annotations

from typing import assert_never

import math

from specrob.lang import ir
from specrob.lang.params import unit_text


def number(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))  # every number is a float: "2" reads back as 2.0
    return repr(float(v))


def norm_text(p: float) -> str:
    return "inf" if math.isinf(p) else str(int(p))


def index(i: ir.IndexTerm, var: str = "x") -> str:
    if isinstance(i, ir.Label):
        return "y"
    if isinstance(i, ir.IndexVar):
        return i.name
    if isinstance(i, ir.IndexConst):
        return str(i.value)
    return f"argmax({term(i.vector, var)})"


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _prec(t: ir.Term) -> int:
    if isinstance(t, ir.Arith):
        return _PREC[t.op]
    if isinstance(t, ir.Neg):
        return 3
    if isinstance(t, ir.Const) and t.value < 0:
        return 3
    return 4


def term(t: ir.Term, var: str = "x") -> str:
    """A term as text; `var` is the name of the property's input variable."""
    if isinstance(t, ir.Net):
        return f"f({'x0' if t.centre else var})"
    if isinstance(t, ir.Input):
        return "x0" if t.centre else var
    if isinstance(t, ir.Const):
        return number(t.value)
    if isinstance(t, (ir.Param, ir.DataConst)):
        return t.name
    if isinstance(t, ir.Text):
        return f'"{t.value}"'
    if isinstance(t, ir.OneHot):
        return f"onehot({index(t.index, var)})"
    if isinstance(t, ir.Index):
        base = term(t.vector, var)
        if _prec(t.vector) < 4:
            base = f"({base})"
        return f"{base}[{index(t.index, var)}]"
    if isinstance(t, ir.Arith):
        p = _PREC[t.op]
        left, right = term(t.left, var), term(t.right, var)
        if _prec(t.left) < p:
            left = f"({left})"
        if _prec(t.right) < p or (_prec(t.right) == p and t.op in "-/"):
            right = f"({right})"
        return f"{left} {t.op} {right}"
    if isinstance(t, ir.Neg):
        inner = term(t.operand, var)
        return f"-{inner}" if _prec(t.operand) >= 3 else f"-({inner})"
    if isinstance(t, ir.Norm):
        return f"norm({term(t.vector, var)}, {norm_text(t.p)})"
    if isinstance(t, ir.Abs):
        return f"abs({term(t.operand, var)})"
    if isinstance(t, ir.Softmax):
        return f"softmax({term(t.vector, var)})"
    if isinstance(t, ir.Reduce):
        rng = t.var + (f" != {index(t.exclude, var)}" if t.exclude is not None else "")
        return f"{t.kind}({term(t.body, var)} for {rng})"
    if isinstance(t, ir.Extremum):
        return f"{t.kind}({', '.join(term(i, var) for i in t.items)})"
    assert_never(t)  # a new IR term fails type checking here until it is printed


def formula(f: ir.Formula, var: str = "x") -> str:
    if isinstance(f, ir.Compare):
        return f"{term(f.left, var)} {f.op} {term(f.right, var)}"
    if isinstance(f, ir.IndexCompare):
        return f"{index(f.left, var)} {f.op} {index(f.right, var)}"
    if isinstance(f, ir.Truth):
        return "true" if f.value else "false"
    if isinstance(f, (ir.And, ir.Or)):
        word = " and " if isinstance(f, ir.And) else " or "
        parts = []
        for item in f.items:
            text = formula(item, var)
            if isinstance(item, (ir.And, ir.Or, ir.IndexQuant)):
                text = f"({text})"
            parts.append(text)
        return word.join(parts)
    if isinstance(f, ir.IndexQuant):
        rng = f.var + (f" != {index(f.exclude, var)}" if f.exclude is not None else "")
        return f"{f.kind} {rng}: {formula(f.body, var)}"
    assert_never(f)  # a new IR formula fails type checking here until it is printed


def value(p: ir.ParamDecl) -> str:
    if isinstance(p.value, ir.DataConst):
        return p.value.name
    if isinstance(p.value, str):
        return f'"{p.value}"'
    return number(p.value)


def param(p: ir.ParamDecl) -> str:
    unit = f"[{unit_text(p.unit)}]" if p.unit is not None else ""
    return f"{p.name}: {p.type}{unit} = {value(p)}"


def ball(b: ir.Ball) -> str:
    return f"ball(x0, {term(b.radius)}, {norm_text(b.p)})"


def centres(c: ir.Centres) -> str:
    text = f'"{c.source}"' if c.is_file else c.source
    if c.correct_only:
        text += " where correct"
    if c.count is not None:
        text += f", {c.count} points"
    return text


def box(b: ir.Box) -> str:
    return f"box({term(b.low)}, {term(b.high)})"


def kernel(k: ir.Kernel) -> str:
    if isinstance(k, ir.UniformBall):
        return f"uniform({ball(k.ball)})"
    if isinstance(k, ir.Gaussian):
        return f"gaussian(x0, {term(k.sigma)})"
    extra = f", {ball(k.ball)}" if k.ball is not None else ""
    return f"manifold({term(k.generator)}, {term(k.sigma)}{extra})"


def weight(g: ir.Weight) -> str:
    if not g.density:
        return "1"
    return "density" + (f" / {g.divide_by}" if g.divide_by else "")


def declaration(d: ir.Property | ir.Score) -> str:
    head = f"{'property' if isinstance(d, ir.Property) else 'score'} {d.name}"
    head += f"({', '.join(param(p) for p in d.params)}):"
    lines = [head, f"    centres: {centres(d.centres)}", f"    domain: {box(d.domain)}"]
    if isinstance(d, ir.Property):
        lines.append(f"    forall {d.var} in {ball(d.ball)}:")
        lines.append(f"        {formula(d.body, d.var)}")
    else:
        given = " given label" if d.label_conditioned else ""
        lines.append(f"    Q = {kernel(d.kernel)}{given}")
        lines.append(f"    H = {d.H}")
        lines.append(f"    G = {weight(d.G)}")
        lines += [f"    {f.var} ~ uniform({term(f.low)}, {term(f.high)})" for f in d.families]
    return "\n".join(lines)


def spec(s: ir.Spec) -> str:
    return "\n\n".join(declaration(d) for d in (*s.properties, *s.scores)) + "\n"
