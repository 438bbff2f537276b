"""PGD, FGSM and sampling maximise an objective inside ball ∩ box, keeping the worst case."""
from __future__ import annotations

import math

import pytest
import torch

from specrob.search import PGD, Region, Sampling, fgsm, make_search


def test_pgd_finds_the_corner_maximum_of_a_linear_objective():
    w = torch.tensor([1.0, -1.0, 2.0])
    x0 = torch.full((4, 3), 0.5)
    x, v = PGD(steps=20).maximise(lambda x: x @ w, x0, Region(0.1, math.inf))
    assert torch.allclose(x, torch.tensor([0.6, 0.4, 0.6]).expand(4, 3), atol=1e-6)
    assert torch.allclose(v, (x0 @ w) + 0.4)


def test_pgd_l2_moves_along_the_gradient():
    w = torch.tensor([3.0, 4.0])
    x0 = torch.full((1, 2), 0.5)
    x, v = PGD(steps=50).maximise(lambda x: x @ w, x0, Region(0.1, 2))
    assert (x - x0).norm().item() == pytest.approx(0.1, abs=1e-5)
    assert v.item() == pytest.approx((x0 @ w).item() + 0.1 * 5, abs=1e-3)


def test_pgd_l1_puts_the_budget_on_the_steepest_coordinate():
    w = torch.tensor([1.0, -3.0, 2.0])
    x0 = torch.full((1, 3), 0.5)
    x, _ = PGD(steps=30).maximise(lambda x: x @ w, x0, Region(0.2, 1))
    assert torch.allclose(x, torch.tensor([[0.5, 0.3, 0.5]]), atol=1e-4)


def test_fgsm_is_one_step_of_size_eps():
    w = torch.tensor([1.0, -1.0])
    x0 = torch.full((2, 2), 0.5)
    x, _ = fgsm().maximise(lambda x: x @ w, x0, Region(0.05, math.inf))
    assert torch.allclose(x, torch.tensor([0.55, 0.45]).expand(2, 2))


def two_peaks(x: torch.Tensor) -> torch.Tensor:
    """A small peak at 0.2 (value 1) and a high one at 0.8 (value 2), on the first coordinate."""
    t = x[:, 0]
    return torch.exp(-((t - 0.2) / 0.1) ** 2) + 2 * torch.exp(-((t - 0.8) / 0.1) ** 2)


def test_restarts_keep_the_worst_case_even_if_only_one_finds_it():
    x0 = torch.full((1, 1), 0.5)
    region = Region(0.5, math.inf)
    gen = torch.Generator().manual_seed(0)
    starts = region.repeat(6).random(x0.repeat(6, 1), torch.Generator().manual_seed(0))
    found_high = (starts[:, 0] > 0.5)
    assert found_high.any() and not found_high.all()  # the restarts disagree
    x, v = PGD(steps=40, restarts=6, step_size=0.02).maximise(two_peaks, x0, region, gen)
    assert x[0, 0] == pytest.approx(0.8, abs=0.02) and v.item() == pytest.approx(2.0, abs=1e-2)


def test_pgd_calls_the_objective_once_per_step():
    calls = []

    def objective(x):
        calls.append(x.shape[0])
        return x.sum(-1)

    PGD(steps=7, restarts=3).maximise(objective, torch.rand(5, 2), Region(0.1, 2))
    assert calls == [15] * 8  # 7 steps + the last point, restarts batched together


def test_sampling_returns_its_best_sample():
    x0 = torch.full((3, 1), 0.5)
    x, v = Sampling(samples=200).maximise(two_peaks, x0, Region(0.5, math.inf),
                                          torch.Generator().manual_seed(0))
    assert (x[:, 0] > 0.7).all() and (v > 1.8).all()


def test_make_search_keeps_only_its_own_options():
    assert make_search("pgd", steps=3, samples=9) == PGD(steps=3)
    assert make_search("sample", steps=3, samples=9) == Sampling(samples=9)
    with pytest.raises(ValueError, match="unknown search"):
        make_search("bfgs")
