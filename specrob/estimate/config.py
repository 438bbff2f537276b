"""The options of an evaluation, one frozen dataclass whose defaults are the CLI's."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from specrob.options import need, number as _number, whole as _whole


@dataclass(frozen=True)
class EvalConfig:
    """Options of `specrob eval` / `specrob.evaluate` (their defaults are the CLI's)."""

    eps: list[float] | None = None  # None: 6 radii from 0 to each property's own eps
    points: int | None = None       # cap on centres per declaration
    samples: int = 100              # uniform samples per centre (accuracy, scores)
    steps: int = 20                 # PGD steps of the attacks
    restarts: int = 2               # PGD restarts
    grid: int = 10                  # grid points of a parameter family
    seed: int = 0
    margins: bool = True            # margin curves for margin scores (uniform ball, H = 1)
    lipschitz: bool = True          # alpha_lim(r) for Lipschitz-shaped properties
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.eps is not None:
            need(self, all(_number(e) and e >= 0 for e in self.eps), "eps",
                 "radii >= 0 (finite numbers)")
        need(self, self.points is None or _whole(self.points, 1), "points", "a whole number >= 1")
        for name in ("samples", "restarts"):
            need(self, _whole(getattr(self, name), 1), name, "a whole number >= 1")
        need(self, _whole(self.steps, 0), "steps", "a whole number >= 0")
        need(self, _whole(self.grid, 2), "grid", "a whole number >= 2")

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.__dict__, sort_keys=True, default=str)
                            .encode()).hexdigest()[:12]
