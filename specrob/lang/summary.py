"""A checked spec as plain data: what `specrob check` prints and writes as JSON."""
from __future__ import annotations

import math

from specrob.lang import ir, printer
from specrob.lang.normal import linear_forms, normal_formula
from specrob.lang.params import unit_text


def _value(p: ir.ParamDecl):
    """JSON-friendly: numbers stay numbers, inf and data constants become text."""
    if isinstance(p.value, float) and math.isfinite(p.value):
        return int(p.value) if p.type in ("int", "count", "norm") else p.value
    return printer.value(p).strip('"')


def params(decl) -> list[dict]:
    return [{"name": p.name, "type": p.type, "unit": unit_text(p.unit) if p.unit else None,
             "value": _value(p)} for p in decl.params]


def describe_property(prop: ir.Property) -> dict:
    """The property as plain data; "backends" is left for `specrob.api.describe` to fill in
    from the back ends' own answers."""
    domain = printer.box(prop.domain)
    return {
        "kind": "property",
        "name": prop.name,
        "params": params(prop),
        "centres": printer.centres(prop.centres),
        "domain": domain,
        "quantifier": f"forall {prop.var} in {printer.ball(prop.ball)} ∩ {domain}",
        "normal_form": normal_formula(prop.body, prop.var),
        "core": printer.formula(prop.body, prop.var),
        "linear_forms": [str(f) for a in linear_forms(prop) for f in a.linear],
        "piecewise_linear": prop.piecewise_linear,
        "nonlinear": list(prop.nonlinear),
        "backends": {},
    }


def describe_score(score: ir.Score) -> dict:
    given = " given label" if score.label_conditioned else ""
    return {
        "kind": "score",
        "name": score.name,
        "params": params(score),
        "centres": printer.centres(score.centres),
        "domain": printer.box(score.domain),
        "Q": printer.kernel(score.kernel) + given,
        "H": score.H,
        "G": printer.weight(score.G),
        "families": [f"{f.var} ~ uniform({printer.term(f.low)}, {printer.term(f.high)})"
                     for f in score.families],
        "backends": {},
    }


def describe(spec: ir.Spec) -> dict:
    return {"path": spec.path,
            "declarations": [describe_property(p) for p in spec.properties]
            + [describe_score(s) for s in spec.scores]}
