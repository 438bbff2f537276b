"""What evaluation can do with a declaration: attacks search any property's ball; a score's
Monte Carlo estimate is exact in expectation for H = id and an upper bound for H = indicator
(its inner maximum is found by an attack, which may miss the worst point)."""
from __future__ import annotations

from specrob.lang import ir
from specrob.lang.support import Support


def supports(decl: ir.Property | ir.Score) -> dict[str, Support]:
    """{"attack": Support} for a property, {"estimate": Support} for a score."""
    if isinstance(decl, ir.Score):
        if decl.H == "id":
            return {"estimate": Support("exact", "Monte Carlo over Q")}
        return {"estimate": Support("bound", "H = indicator: an attack gives an upper bound")}
    return {"attack": Support("exact", "maximises the violation inside ball ∩ domain")}
