"""Searches that maximise a per-sample objective inside ball ∩ box around each centre.

One implementation serves training (the constraint's worst point), attacks and metrics.
The objective maps points of shape (K, n) to values (K,), where K = R·B stacks R restarts of
the B centres (row r·B + b belongs to centre b); the worst case over restarts and steps is
kept per centre. Add a search by subclassing `Search` and listing it in `SEARCHES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from specrob.search.region import Region, ascent_step

Objective = Callable[[torch.Tensor], torch.Tensor]


class Search:
    name = "search"

    def maximise(self, objective: Objective, x0: torch.Tensor, region: Region,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The best point found per centre (B, n) and its objective value (B,)."""
        raise NotImplementedError


def _worst_over_restarts(xs: torch.Tensor, values: torch.Tensor, batch: int):
    """Per centre, the restart with the largest objective (the worst case for the property)."""
    values = values.reshape(-1, batch)
    best = values.argmax(0)
    picked = xs.reshape(values.shape[0], batch, -1)[best, torch.arange(batch, device=xs.device)]
    return picked, values.max(0).values


@dataclass(frozen=True)
class PGD(Search):
    """Projected gradient ascent (Madry et al.) with random restarts; the step is the
    steepest ascent of the ball's norm. `step_size` is a fraction of eps (default 2.5/steps,
    the torchattacks/foolbox convention)."""

    name = "pgd"
    steps: int = 10
    restarts: int = 1
    step_size: float | None = None
    random_start: bool = True
    l1_coordinates: int = 1

    def __post_init__(self) -> None:
        from specrob.errors import OptionError
        for name, least in (("steps", 0), ("restarts", 1), ("l1_coordinates", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise OptionError(f"PGD {name} = {value!r}: expected a whole number >= {least}")
        if self.step_size is not None and not (isinstance(self.step_size, (int, float))
                                               and math.isfinite(self.step_size)
                                               and self.step_size > 0):
            raise OptionError(f"PGD step_size = {self.step_size!r}: expected a number > 0")

    def maximise(self, objective, x0, region, generator=None):
        batch = x0.shape[0]
        starts = x0.detach().repeat(self.restarts, 1)
        reg = region.repeat(self.restarts)
        x = reg.random(starts, generator) if self.random_start else starts.clone()
        fraction = self.step_size if self.step_size is not None else 2.5 / max(self.steps, 1)
        alpha = fraction * reg.radius(starts)
        project = reg.projector(starts)
        best_x, best_v = x, torch.full((x.shape[0],), -math.inf, device=x.device)
        for step in range(self.steps + 1):
            if step < self.steps:
                value, grad = _value_and_grad(objective, x)
                if step == 0 and not self.random_start:
                    # At the centre the objective may have no direction at all: guarded
                    # norms of x - x0 have gradient 0 there (LR, local Lipschitz) and a
                    # ratio by norm(x - x0) is 0/0. Such rows start at a random point of
                    # the ball instead (Wong et al.'s random-start FGSM), else the step is
                    # a no-op and the search returns x0.
                    stuck = ~torch.isfinite(grad).all(-1) | (grad == 0).all(-1)
                    if stuck.any():
                        moved = reg.random(starts, generator)
                        x = torch.where(stuck.unsqueeze(-1), moved, x)
                        value, grad = _value_and_grad(objective, x)
            else:  # the last point: its value only
                with torch.no_grad():
                    value = objective(x)
            x, value = x.detach(), value.detach()
            better = value > best_v
            best_x = torch.where(better.unsqueeze(-1), x, best_x)
            best_v = torch.where(better, value, best_v)
            if step < self.steps:
                x = project(x + ascent_step(grad, reg.p, alpha, self.l1_coordinates, x=x,
                                            low=reg.low, high=reg.high))
        return _worst_over_restarts(best_x, best_v, batch)


def _value_and_grad(objective: Objective, x: torch.Tensor):
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = objective(x)
        (grad,) = torch.autograd.grad(value.sum(), x)
    return value, grad


def fgsm(**options) -> PGD:
    """FGSM and its l_1 / l_2 analogues: one steepest-ascent step of size eps from x0 (from
    a random point of the ball where the objective has no gradient at x0)."""
    return PGD(steps=1, restarts=1, step_size=1.0, random_start=False, **options)


@dataclass(frozen=True)
class Sampling(Search):
    """Uniform samples from ball ∩ box; the worst one per centre."""

    name = "sample"
    samples: int = 10

    def maximise(self, objective, x0, region, generator=None):
        batch = x0.shape[0]
        xs = region.uniform(x0.detach(), self.samples, generator).reshape(-1, x0.shape[-1])
        with torch.no_grad():
            values = objective(xs)
        return _worst_over_restarts(xs, values, batch)


SEARCHES = {"pgd": PGD, "fgsm": fgsm, "sample": Sampling}


_OPTIONS = {"pgd": {"steps", "restarts", "step_size", "random_start", "l1_coordinates"},
            "fgsm": {"l1_coordinates"}, "sample": {"samples"}}


def search_options(name: str) -> set[str]:
    """The options a search takes (for checking a user's keywords)."""
    if name not in SEARCHES:
        raise ValueError(f"unknown search '{name}': choose one of {', '.join(SEARCHES)}")
    return set(_OPTIONS[name])


def make_search(name: str, **options) -> Search:
    """A search by name; options it does not take are ignored (shared option dicts)."""
    accepted = search_options(name)
    return SEARCHES[name](**{k: v for k, v in options.items() if k in accepted})
