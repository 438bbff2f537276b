"""Ball ∩ box: projections, random starts and uniform samples stay inside; steepest steps."""
from __future__ import annotations

import math

import pytest
import torch

from specrob.search.region import Region, ascent_step, project_l1

NORMS = [1.0, 2.0, math.inf]


def dist(d: torch.Tensor, p: float) -> torch.Tensor:
    return d.abs().sum(-1) if p == 1 else d.norm(dim=-1) if p == 2 else d.abs().amax(-1)


@pytest.mark.parametrize("p", NORMS)
def test_projection_lands_in_ball_and_box(p):
    torch.manual_seed(0)
    x0 = torch.rand(50, 7)
    region = Region(0.3, p)
    x = region.project(x0 + torch.randn(50, 7), x0)
    assert region.contains(x, x0).all()


@pytest.mark.parametrize("p", NORMS)
def test_projection_keeps_points_already_inside(p):
    torch.manual_seed(1)
    x0 = torch.full((20, 5), 0.5)
    region = Region(0.2, p)
    x = region.random(x0)
    assert torch.allclose(region.project(x, x0), x)


def test_l1_projection_is_the_euclidean_projection():
    """Against brute force: the projection is no farther than any point of the ball found
    by projecting many random candidates."""
    torch.manual_seed(2)
    v = torch.randn(1, 4)
    eps = torch.tensor([[0.5]])
    p = project_l1(v, eps)
    assert p.abs().sum() == pytest.approx(0.5, abs=1e-6)
    candidates = torch.randn(20000, 4)
    candidates = candidates / candidates.abs().sum(-1, keepdim=True) * 0.5 * torch.rand(20000, 1)
    assert (v - p).norm() <= (v - candidates).norm(dim=-1).min() + 1e-6


@pytest.mark.parametrize("p", NORMS)
def test_random_starts_and_uniform_samples_are_inside(p):
    torch.manual_seed(3)
    x0 = torch.rand(30, 6)
    x0[0] = 0.0  # a corner: most of the ball lies outside the box
    region = Region(0.4, p)
    assert region.contains(region.random(x0), x0).all()
    samples = region.uniform(x0, 8)
    assert samples.shape == (8, 30, 6)
    assert region.contains(samples.reshape(-1, 6), x0.repeat(8, 1)).all()


def test_uniform_in_linf_box_covers_the_intersection():
    torch.manual_seed(4)
    x0 = torch.tensor([[0.0, 0.5]])
    s = Region(0.2, math.inf).uniform(x0, 4000).reshape(-1, 2)
    assert s[:, 0].min() >= 0 and s[:, 0].max() == pytest.approx(0.2, abs=0.01)
    assert s[:, 0].mean() == pytest.approx(0.1, abs=0.01)   # uniform on [0, 0.2], not clamped


def test_per_centre_radii():
    x0 = torch.full((3, 2), 0.5)
    region = Region(torch.tensor([0.0, 0.1, 0.3]), math.inf)
    x = region.project(x0 + 1.0, x0)
    assert torch.allclose(x[:, 0], torch.tensor([0.5, 0.6, 0.8]))


def test_steepest_ascent_steps():
    g = torch.tensor([[0.5, -2.0, 1.0]])
    assert torch.equal(ascent_step(g, math.inf, 0.1), 0.1 * g.sign())
    assert ascent_step(g, 2, 1.0).norm() == pytest.approx(1.0)
    assert torch.equal(ascent_step(g, 1, 0.3), torch.tensor([[0.0, -0.3, 0.0]]))


def test_steepest_ascent_in_the_box_skips_coordinates_the_box_would_clamp_back():
    g = torch.tensor([[0.5, -2.0, 1.0]])
    x = torch.tensor([[0.3, 0.0, 1.0]])  # the largest |g| pushes x_2 below 0, x_3 above 1
    assert torch.equal(ascent_step(g, 1, 0.3, x=x, low=0.0, high=1.0),
                       torch.tensor([[0.3, 0.0, 0.0]]))
    # l_inf: blocked coordinates step outward and the projection clamps them back (see below)
    assert torch.equal(ascent_step(g, math.inf, 0.1, x=x, low=0.0, high=1.0),
                       torch.tensor([[0.1, -0.1, 0.1]]))
    step = ascent_step(g, 2, 1.0, x=x, low=0.0, high=1.0)  # all of the length goes to x_1
    assert torch.allclose(step, torch.tensor([[1.0, 0.0, 0.0]]))


def test_uniform_slices_bound_each_slice_and_draw_the_one_call_numbers_for_l_inf():
    import math
    x0 = torch.rand(30, 8, generator=torch.Generator().manual_seed(0))
    region = Region(0.1, math.inf, 0.0, 1.0)
    whole, _ = region.uniform_with_rate(x0, 25, torch.Generator().manual_seed(2))
    slices = list(region.uniform_slices(x0, 25, torch.Generator().manual_seed(2),
                                        max_elements=30 * 8 * 4))
    assert [len(p) for p, _ in slices] == [4] * 6 + [1]
    assert torch.equal(torch.cat([p for p, _ in slices]), whole)


def test_uniform_slices_for_l2_stay_in_the_ball_and_the_box():
    x0 = torch.rand(20, 5, generator=torch.Generator().manual_seed(0))
    region = Region(0.3, 2.0, 0.0, 1.0)
    slices = list(region.uniform_slices(x0, 9, torch.Generator().manual_seed(1),
                                        max_elements=20 * 5 * 2))
    pts = torch.cat([p for p, _ in slices])
    assert pts.shape == (9, 20, 5) and len(slices) == 5
    assert bool(((pts - x0).norm(dim=-1) <= 0.3 + 1e-6).all())
    assert bool(((pts >= 0) & (pts <= 1)).all())


def test_an_l_inf_step_lands_where_the_masked_step_lands_after_projection():
    # ascent_step skips the box-face mask for l_inf: the projection clamps a blocked
    # coordinate back onto its face, so the projected point is the masked step's
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(64, 30, generator=gen)
    x0[:, :10] = 0.0  # saturated pixels: on the box's faces
    x0[:, 10:20] = 1.0
    region = Region(0.1, math.inf, 0.0, 1.0)
    project = region.projector(x0)
    x = project(region.random(x0, gen))
    grad = torch.randn(64, 30, generator=gen)
    blocked = ((x >= 1.0) & (grad > 0)) | ((x <= 0.0) & (grad < 0))
    assert blocked.any()
    masked = 0.03 * grad.masked_fill(blocked, 0.0).sign()
    fast = ascent_step(grad, math.inf, 0.03, x=x, low=0.0, high=1.0)
    assert torch.equal(project(x + fast), project(x + masked))


def test_michelots_threshold_is_the_sorted_threshold():
    from specrob.search.region import _sorted_threshold
    gen = torch.Generator().manual_seed(0)
    for trial in range(60):
        rows, n = 1 + trial % 7, 1 + (37 * trial) % 800
        d = torch.randn(rows, n, generator=gen, dtype=torch.float64) * (5 if trial % 2 else 0.05)
        if trial % 5 == 0:
            d[:, : n // 2] = 0.0  # sparse rows
        if trial % 9 == 0:
            d[:] = d[:, :1]  # every magnitude tied
        eps = torch.rand(rows, 1, generator=gen, dtype=torch.float64) * 3
        if trial % 11 == 0:
            eps[:] = 0.0  # the projection is the centre
        a = d.abs()
        reference = torch.where(a.sum(-1, keepdim=True) <= eps, d,
                                d.sign() * torch.relu(a - _sorted_threshold(a, eps)))
        assert torch.allclose(project_l1(d, eps), reference, rtol=1e-9, atol=1e-9), trial
