"""What the verification back ends can do with a property, from a dry run of the encoders that
`verify` and `export` use (one source of truth: a property is refused here exactly when the
encoder refuses it at a real centre).

The property is encoded at a synthetic centre (the middle of its domain, outputs f(x0) all
distinct and non-zero) for a network with enough outputs for its class indices; then
- bounds (CROWN, branch and bound) prove atoms that are linear in the outputs: `exact`, or
  `sound` when the body has a disjunction (each part must hold on the whole ball) or SCR is
  strengthened to its softmax margin condition (docs/design.md §4);
- Marabou encodes every piecewise-linear query: `exact`, `sound` for an l_2 ball (searched on
  its enclosing box) or a strengthened SCR;
- VNN-LIB writes what `vnnlib_text` accepts: `exact` for l_inf balls, `sound` otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from specrob.lang import ir
from specrob.lang import query as q
from specrob.lang.encode import Unsupported, dry_query
from specrob.lang.support import Support

def _atoms(f: q.Formula) -> list[q.Atom]:
    if isinstance(f, q.Atom):
        return [f]
    if isinstance(f, (q.And, q.Or)):
        return [a for item in f.items for a in _atoms(item)]
    return []


def supports(prop: ir.Property) -> dict[str, Support]:
    """{"bounds", "marabou", "vnnlib": Support} for the property (see the module's text)."""
    from specrob.verification.vnnlib import VnnlibExportError, vnnlib_text
    try:
        query = dry_query(prop)
    except Unsupported as error:
        why = str(error)
        return {"bounds": Support("no", f"not a linear constraint on the outputs: {why}"),
                "marabou": Support("no", why), "vnnlib": Support("no", why)}
    strengthened = "softmax through its sufficient margin condition" if query.sufficient else ""
    box = {2.0: "l_2 ball checked on its enclosing box",
           1.0: "l_1 ball checked on its enclosing box"}.get(query.region.p, "")
    out = {}
    nonlinear = [a for a in _atoms(query.body) if not a.is_linear_in_outputs()]
    if nonlinear:
        what = "a norm" if nonlinear[0].norms else "the inputs x"
        out["bounds"] = Support("no", f"not a linear constraint on the outputs: an atom with "
                                      f"{what}")
    else:
        note = "; ".join(n for n in (
            "a disjunction is verified only when one part holds on the whole ball"
            if q.has_or(query.body) else "", strengthened) if n)
        out["bounds"] = Support("sound" if note else "exact", note)
    marabou_notes = [n for n in (strengthened, box if query.region.p == 2 else "") if n]
    out["marabou"] = Support("sound" if marabou_notes else "exact", "; ".join(marabou_notes))
    try:
        vnnlib_text(query)
    except VnnlibExportError as error:
        out["vnnlib"] = Support("no", str(error))
    else:
        notes = [n for n in (strengthened, box) if n]
        out["vnnlib"] = Support("sound" if notes else "exact", "; ".join(notes))
    return out
