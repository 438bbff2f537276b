"""The answer a back end gives for a property: `exact` (it encodes the property itself),
`sound` (a stronger condition: its "verified" stays sound, "unknown" may come more often, e.g.
an l_2 ball checked on its enclosing box), `no` (refused; `note` says why), or `bound` (an
estimate that bounds the quantity from one side)."""
from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("exact", "sound", "bound", "no")


@dataclass(frozen=True)
class Support:
    level: str  # one of LEVELS
    note: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"support level {self.level!r} is not one of {LEVELS}")

    def __str__(self) -> str:
        return self.level + (f" ({self.note})" if self.note else "")
