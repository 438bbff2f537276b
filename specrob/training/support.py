"""What training can do with a property: every checked property compiles to a constraint loss
(its body in a differentiable logic, the ball searched by projected gradient ascent); the
certified regime needs the body's atoms to be linear inequalities in the outputs (a dry run of
the encoder `verify` uses, as the verification back end's `supports`)."""
from __future__ import annotations

from specrob.lang import ir
from specrob.lang import query as q
from specrob.lang.encode import Unsupported, dry_query
from specrob.lang.support import Support


def supports(prop: ir.Property) -> dict[str, Support]:
    """{"loss": Support, "certified": Support}: the loss is always exact (Fischer et al. 2019,
    DL2; the other logics of Casadio et al. 2022 likewise); certified training (IBP /
    CROWN-IBP) is exact for conjunctions of linear output rows, sound with a disjunction or
    SCR's margin condition, and refused for atoms with norms or inputs."""
    from specrob.training.certified import CertifiedError, check_rows
    out = {"loss": Support("exact", "differentiable logics; the ball by projected search")}
    try:
        query = dry_query(prop)
        check_rows(query.body, prop.name)
    except (Unsupported, CertifiedError) as error:
        out["certified"] = Support("no", str(error))
        return out
    notes = [n for n in ("a disjunction counts only when one part holds on the whole ball"
                         if q.has_or(query.body) else "",
                         "softmax through its sufficient margin condition"
                         if query.sufficient else "") if n]
    out["certified"] = Support("sound" if notes else "exact", "; ".join(notes))
    return out
