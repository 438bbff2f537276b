"""Estimates with their uncertainty: proportions (Wilson intervals) and means (normal
intervals), each with its sample count, as plain data for results.json."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

Z95 = 1.959963984540054  # the two-sided 95% quantile of the standard normal


@dataclass(frozen=True)
class Estimate:
    """A value, its 95% confidence interval [low, high] and the number of samples."""

    value: float
    low: float
    high: float
    count: int

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}] (n={self.count})"


def proportion(successes: int | float, count: int, z: float = Z95) -> Estimate:
    """A binomial proportion with the Wilson score interval (good at 0 and 1 and for small n)."""
    if count == 0:
        return Estimate(math.nan, 0.0, 1.0, 0)
    p = successes / count
    denom = 1 + z * z / count
    centre = (p + z * z / (2 * count)) / denom
    half = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count)) / denom
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), count)


def mean(values: torch.Tensor, z: float = Z95, bounds: tuple[float, float] | None = None
         ) -> Estimate:
    """The mean of i.i.d. values with a normal-approximation interval (clipped to `bounds`)."""
    v = values.detach().double().flatten()
    n = v.numel()
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    m = v.mean().item()
    half = z * (v.std(unbiased=True).item() / math.sqrt(n) if n > 1 else math.inf)
    low, high = m - half, m + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return Estimate(m, low, high, n)


def bool_proportion(flags: torch.Tensor) -> Estimate:
    """The fraction of True in a boolean tensor."""
    return proportion(int(flags.sum().item()), flags.numel())
