"""Confidence intervals cover the true value at the stated rate."""
from __future__ import annotations

import torch

from specrob.stats import bool_proportion, mean, proportion


def test_wilson_intervals_cover_a_simulated_bernoulli_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(0)
    for p, n in ((0.3, 50), (0.9, 100), (0.02, 400)):
        draws = torch.rand((4000, n), generator=gen) < p
        covered = 0
        for row in draws:
            e = bool_proportion(row)
            covered += e.low <= p <= e.high
        assert 0.93 <= covered / 4000 <= 0.975, (p, n, covered / 4000)


def test_normal_intervals_for_means_cover_95_percent_of_the_time():
    gen = torch.Generator().manual_seed(1)
    values = torch.rand((4000, 200), generator=gen) ** 2  # mean 1/3
    covered = sum(mean(row).low <= 1 / 3 <= mean(row).high for row in values)
    assert 0.93 <= covered / 4000 <= 0.97


def test_intervals_at_the_extremes_stay_inside_0_1():
    assert proportion(0, 20).low == 0.0 and proportion(0, 20).high > 0.1
    assert proportion(20, 20).high == 1.0 and proportion(20, 20).low < 0.9
    e = mean(torch.ones(10), bounds=(0.0, 1.0))
    assert (e.value, e.low, e.high, e.count) == (1.0, 1.0, 1.0, 10)
