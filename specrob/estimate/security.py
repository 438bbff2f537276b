"""Constraint security and constraint accuracy of a property (Casadio et al., Defs. 6-7).

Security at eps: the fraction of centres where no attack finds a violation inside
ball(x0, eps) ∩ domain. The attacks are the property's own (the search that training uses,
maximising the body's violation): PGD in the ball's norm with random restarts and FGSM; per
centre the worst case over attacks counts. Every violation is re-checked with a fresh forward
pass at the reported point, which must lie in the region. Balls grow with eps, so a
counterexample found at a smaller eps counts at every larger one: security is non-increasing
in eps by construction.

Accuracy at eps: the mean over centres of the fraction of `samples` uniform points of
ball ∩ domain where the body holds.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from specrob.stats import Estimate, bool_proportion, mean
from specrob.lang import ir
from specrob.logic.compiled import CompiledProperty
from specrob.search.region import Region
from specrob.search.attacks import Attack, attack_once, default_attacks


def at_radius(compiled: CompiledProperty, eps: float) -> CompiledProperty:
    """The same property with ball radius eps (its radius parameter set to eps too, so a body
    that mentions the radius stays consistent)."""
    out = copy.copy(compiled)
    out.region = Region(eps, compiled.region.p, compiled.region.low, compiled.region.high)
    radius = compiled.prop.ball.radius
    if isinstance(radius, ir.Param):
        out.params = {**compiled.params, radius.name: eps}
    return out


@dataclass
class SecurityResult:
    eps: float
    security: Estimate
    accuracy: Estimate | None
    violated: torch.Tensor  # per centre (bool), after the monotone closure
    found_by: list[str]  # per centre: the attack whose counterexample counts, or ""
    counterexamples: torch.Tensor | None = field(default=None, repr=False)
    acceptance: dict | None = None  # the uniform sampler's acceptance rate (accuracy)

    def as_dict(self) -> dict:
        wins: dict[str, int] = {}
        for name in self.found_by:
            if name:
                wins[name] = wins.get(name, 0) + 1
        return {"eps": self.eps, "security": self.security.as_dict(),
                "accuracy": None if self.accuracy is None else self.accuracy.as_dict(),
                "violations": int(self.violated.sum()), "found_by": wins,
                **({"acceptance": self.acceptance} if self.acceptance is not None else {})}


def accuracy_at(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                y: torch.Tensor, samples: int, generator=None) -> Estimate:
    """Mean over centres of the fraction of uniform points of ball ∩ domain where the body holds."""
    return accuracy_with_rate(compiled, model, x0, y, samples, generator)[0]


def accuracy_with_rate(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                       y: torch.Tensor, samples: int, generator=None, *,
                       max_elements: int = 1 << 22) -> tuple[Estimate, dict]:
    """`accuracy_at` and the acceptance rate of the exact uniform sampler of ball ∩ domain
    (min and mean over centres; 1 for l_inf, where ball ∩ box is a box). The samples are
    drawn and checked in slices of about `max_elements` numbers (`Region.uniform_slices`)."""
    oks, rates = [], []
    with torch.no_grad():
        fx0 = compiled.centre_output(model, x0)
        # slices of the (S, B, n) samples: memory bounded by the slice, not by S x B
        for pts, rate in compiled.region.uniform_slices(x0, samples, generator,
                                                        max_elements=max_elements):
            oks.extend(compiled.holds(model, pts[s], x0, y, fx0) for s in range(len(pts)))
            rates.append(rate)
    ok = torch.stack(oks)  # (S, B)
    rate = torch.stack(rates).mean(0)  # each slice's rate, averaged (one slice: its own)
    est = mean(ok.float().mean(0), bounds=(0.0, 1.0))
    acceptance = {"min": float(rate.min()) if rate.numel() else 1.0,
                  "mean": float(rate.mean()) if rate.numel() else 1.0}
    return est, acceptance


def security_curve(prop: ir.Property, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                   eps_values: list[float], *, attacks: list[Attack] | None = None,
                   samples: int = 0, seed: int = 0, progress=None,
                   search_model: nn.Module | None = None) -> list[SecurityResult]:
    """Security (and, with samples > 0, accuracy) at each eps, in increasing order of eps;
    the attacks search on `search_model` when given (see `attack_once`)."""
    attacks = attacks or default_attacks()
    base = CompiledProperty(prop, x0.shape[-1])
    was = model.training
    model.eval()
    results: list[SecurityResult] = []
    carried = torch.zeros(len(y), dtype=torch.bool, device=x0.device)
    carried_by = [""] * len(y)
    for eps in sorted(eps_values):
        compiled = at_radius(base, eps)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        violated, found_by, points = attack_once(compiled, model, x0, y, attacks, gen,
                                                 search_model)
        found_by = [c or f for c, f in zip(carried_by, found_by)]
        violated = violated | carried
        acc, acceptance = (accuracy_with_rate(compiled, model, x0, y, samples, gen)
                           if samples > 0 else (None, None))
        results.append(SecurityResult(eps, bool_proportion(~violated), acc, violated,
                                      found_by, points, acceptance))
        carried, carried_by = violated, found_by
        if progress is not None:
            progress()
    model.train(was)
    return results
