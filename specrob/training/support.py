"""What training can do with a property: every checked property compiles to a constraint loss
(its body in a differentiable logic, the ball searched by projected gradient ascent)."""
from __future__ import annotations

from specrob.lang import ir
from specrob.lang.support import Support


def supports(prop: ir.Property) -> dict[str, Support]:
    """{"loss": Support}: always exact (Fischer et al. 2019, DL2; the other logics of Casadio
    et al. 2022 likewise)."""
    del prop
    return {"loss": Support("exact", "differentiable logics; the ball by projected search")}
