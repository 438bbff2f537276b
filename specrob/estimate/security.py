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

from specrob.estimate.stats import Estimate, bool_proportion, mean
from specrob.lang import ir
from specrob.logic.compiled import CompiledProperty
from specrob.search.region import Region
from specrob.search.searches import PGD, Search, fgsm


@dataclass(frozen=True)
class Attack:
    name: str
    search: Search


def default_attacks(steps: int = 20, restarts: int = 2) -> list[Attack]:
    """PGD from random starts, PGD from the centre itself (its first steps follow the
    gradient at x0, which random starts on a large l_2 sphere lose), and FGSM."""
    return [Attack(f"pgd-{steps}x{restarts}", PGD(steps=steps, restarts=restarts)),
            Attack(f"pgd-{steps}-centre", PGD(steps=steps, restarts=1, random_start=False)),
            Attack("fgsm", fgsm())]


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


def attack_once(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                y: torch.Tensor, attacks: list[Attack], generator=None,
                search_model: nn.Module | None = None):
    """Per centre: is a confirmed violation found, by which attack, and where. The attacks
    search on `search_model` (default: the model; e.g. its logits, without a final softmax
    whose saturated gradients vanish, see `attack_model`); every violation is re-checked on
    the model itself."""
    violated = torch.zeros(len(y), dtype=torch.bool, device=x0.device)
    found_by = [""] * len(y)
    points = x0.clone()
    search_model = model if search_model is None else search_model
    with torch.no_grad():
        fx0 = compiled.centre_output(model, x0)
        search_fx0 = fx0 if search_model is model else compiled.centre_output(search_model, x0)
    for attack in attacks:
        x = compiled.worst_point(search_model, x0, y, attack.search, generator=generator,
                                 fx0=search_fx0)
        # re-check on the model: a fresh forward pass at the reported point, in the region
        bad = ~compiled.holds(model, x, x0, y, fx0) & compiled.region.contains(x, x0)
        new = bad & ~violated
        points[new] = x[new]
        for i in new.nonzero().flatten().tolist():
            found_by[i] = attack.name
        violated |= bad
    return violated, found_by, points


def attack_model(prop: ir.Property, model: nn.Module) -> tuple[nn.Module | None, str | None]:
    """The module attacks should search on, and a note for the results: the logits when the
    model ends in a Softmax / LogSoftmax that the property does not see (it compares outputs
    of f(x) order-wise only, see `specrob.verify.final_layer`); (None, note) when the model
    ends in one the property needs; (None, None) otherwise."""
    from specrob.verify.final_layer import logits_module, order_only
    logits, kind = logits_module(model)
    if kind is None:
        return None, None
    if order_only(prop.body):
        return logits, (f"final {kind} stripped for the attacks: {prop.name} compares outputs "
                        f"of f(x) order-wise only (argmax / margins), which {kind.lower()} "
                        f"preserves; violations re-checked on the model")
    return None, (f"attacks run through the final {kind}: {prop.name} needs its values; "
                  f"saturated {kind.lower()} outputs have vanishing gradients, so security "
                  f"may be overestimated")


def accuracy_at(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                y: torch.Tensor, samples: int, generator=None) -> Estimate:
    """Mean over centres of the fraction of uniform points of ball ∩ domain where the body holds."""
    return accuracy_with_rate(compiled, model, x0, y, samples, generator)[0]


def accuracy_with_rate(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                       y: torch.Tensor, samples: int, generator=None) -> tuple[Estimate, dict]:
    """`accuracy_at` and the acceptance rate of the exact uniform sampler of ball ∩ domain
    (min and mean over centres; 1 for l_inf, where ball ∩ box is a box)."""
    pts, rate = compiled.region.uniform_with_rate(x0, samples, generator)  # (S, B, n), (B,)
    with torch.no_grad():
        fx0 = compiled.centre_output(model, x0)
        ok = torch.stack([compiled.holds(model, pts[s], x0, y, fx0) for s in range(samples)])
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
