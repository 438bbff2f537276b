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
from specrob.numerics import generator
from specrob.lang import ir
from specrob.logic.compiled import CompiledProperty
from specrob.search.region import Region
from specrob.search.attacks import Attack, attack_once, block_seed, default_attacks


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
    # per centre: the fraction of samples where the body holds, and the sampler's acceptance
    # rate (what blocks of centres combine from)
    accuracy_values: torch.Tensor | None = field(default=None, repr=False)
    rates: torch.Tensor | None = field(default=None, repr=False)

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
    values, rate = accuracy_values(compiled, model, x0, y, samples, generator,
                                   max_elements=max_elements)
    return _accuracy(values), _acceptance(rate)


def _accuracy(values: torch.Tensor) -> Estimate:
    return mean(values, bounds=(0.0, 1.0))


def _acceptance(rate: torch.Tensor) -> dict:
    return {"min": float(rate.min()) if rate.numel() else 1.0,
            "mean": float(rate.mean()) if rate.numel() else 1.0}


def accuracy_values(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                    y: torch.Tensor, samples: int, generator=None, *,
                    max_elements: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
    """Per centre, the fraction of `samples` uniform points of ball ∩ domain where the body
    holds (B,), and the sampler's acceptance rate (B,)."""
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
    return ok.float().mean(0), rate


# centres per block: each block draws from its own seed (`block_seed`), so blocks may run in
# any process (`estimate/distributed.py`) and give the curve of one process; a run of up to
# BLOCK centres draws what it drew before blocks existed
BLOCK = 2048


def blocks(count: int) -> list[slice]:
    """The blocks of `count` centres (one, possibly empty, when count <= BLOCK)."""
    return [slice(k, k + BLOCK) for k in range(0, max(count, 1), BLOCK)]


def security_curve(prop: ir.Property, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                   eps_values: list[float], *, attacks: list[Attack] | None = None,
                   samples: int = 0, seed: int = 0, progress=None,
                   search_model: nn.Module | None = None) -> list[SecurityResult]:
    """Security (and, with samples > 0, accuracy) at each eps, in increasing order of eps;
    the attacks search on `search_model` when given (see `attack_once`). Centres go in
    blocks of BLOCK (`curve_block`), whose results `combine` joins.

    Shape: x0 (B, n), y (B,); each result's `violated` (B,). Source: Casadio et al. 2022,
    Defs. 6-7 (constraint security and accuracy)."""
    parts = blocks(len(y))
    step = None if progress is None else (lambda: progress(1 / len(parts)))
    return combine([curve_block(prop, model, x0[s], y[s], eps_values, attacks=attacks,
                                samples=samples, seed=block_seed(seed, k), progress=step,
                                search_model=search_model)
                    for k, s in enumerate(parts)])


def combine(parts: list[list[SecurityResult]]) -> list[SecurityResult]:
    """The curve of all centres from the curves of its blocks (in block order): per eps,
    security over every centre, accuracy the mean of every centre's fraction."""
    if len(parts) == 1:
        return parts[0]
    out = []
    for rows in zip(*parts):
        violated = torch.cat([r.violated for r in rows])
        found_by = [name for r in rows for name in r.found_by]
        points = (None if any(r.counterexamples is None for r in rows)
                  else torch.cat([r.counterexamples for r in rows]))
        acc = acceptance = values = rates = None
        if all(r.accuracy_values is not None for r in rows):
            values = torch.cat([r.accuracy_values for r in rows])
            rates = torch.cat([r.rates for r in rows])
            acc, acceptance = _accuracy(values), _acceptance(rates)
        out.append(SecurityResult(rows[0].eps, bool_proportion(~violated), acc, violated,
                                  found_by, points, acceptance, values, rates))
    return out


def curve_block(prop: ir.Property, model: nn.Module, x0: torch.Tensor, y: torch.Tensor,
                eps_values: list[float], *, attacks: list[Attack] | None = None,
                samples: int = 0, seed: int = 0, progress=None,
                search_model: nn.Module | None = None) -> list[SecurityResult]:
    """`security_curve` on one block of centres, its random draws from `seed` alone."""
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
        gen = generator(seed, x0.device)
        violated, found_by, points = attack_once(compiled, model, x0, y, attacks, gen,
                                                 search_model)
        found_by = [c or f for c, f in zip(carried_by, found_by)]
        violated = violated | carried
        acc = acceptance = values = rates = None
        if samples > 0:
            values, rates = accuracy_values(compiled, model, x0, y, samples, gen)
            acc, acceptance = _accuracy(values), _acceptance(rates)
        results.append(SecurityResult(eps, bool_proportion(~violated), acc, violated,
                                      found_by, points, acceptance, values, rates))
        carried, carried_by = violated, found_by
        if progress is not None:
            progress()
    model.train(was)
    return results


# --- blocks on disk: a shard's part of a curve (`specrob eval --shard`, `specrob merge`) ----

def save_block(path, curve: list[SecurityResult]) -> None:
    """One block's curve, per eps its per-centre results (violated, found_by, accuracy
    fractions, acceptance rates; not the counterexamples), written atomically."""
    import os
    from pathlib import Path
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"eps": r.eps, "violated": r.violated.cpu(), "found_by": r.found_by,
             "accuracy_values": None if r.accuracy_values is None else r.accuracy_values.cpu(),
             "rates": None if r.rates is None else r.rates.cpu()} for r in curve]
    tmp = path.with_suffix(".tmp")
    torch.save(rows, tmp)
    os.replace(tmp, path)


def load_block(path) -> list[SecurityResult]:
    """A block saved by `save_block`, as the curve `combine` joins."""
    from specrob.errors import SpecrobError
    try:
        rows = torch.load(path, weights_only=True)
    except Exception as exc:  # a cut or foreign file: pickle, zip and type errors alike
        raise SpecrobError(f"{path}: unreadable block ({type(exc).__name__}); rerun its shard "
                           f"with --fresh") from None
    out = []
    for row in rows:
        values, rates = row["accuracy_values"], row["rates"]
        acc = None if values is None else _accuracy(values)
        acceptance = None if rates is None else _acceptance(rates)
        out.append(SecurityResult(row["eps"], bool_proportion(~row["violated"]), acc,
                                  row["violated"], list(row["found_by"]), None, acceptance,
                                  values, rates))
    return out
