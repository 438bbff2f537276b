"""Region.uniform is exactly uniform on ball ∩ box (no clamping), checked against analytic
volume fractions at a corner, a face and an interior point of [0,1]^2 (issue 18 item 3)."""
from __future__ import annotations

import math

import pytest
import torch

from specrob.search.region import Region, SamplingError

N = 20000
# a binomial share of N samples: 5 standard deviations of p = 1/2 (about 0.018); the old
# clamping sampler is off by 0.1-0.5 in every check below
TOL = 5 * math.sqrt(0.25 / N)


def dist(d, p):
    return d.abs().sum(-1) if p == 1 else d.norm(dim=-1)


def draw(x0, eps, p, seed=0, count=N):
    g = torch.Generator().manual_seed(seed)
    pts, rate = Region(eps, p).uniform_with_rate(torch.tensor([x0], dtype=torch.float64),
                                                 count, g)
    return pts[:, 0], rate


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_corner_is_a_quarter_ball(p):
    """At the corner (0, 0) the intersection is a quarter of the ball: P(r <= eps/2) = 1/4
    (area scales with r^2), no coordinate exactly on a face, both quadrant halves equal."""
    eps = 0.4
    pts, rate = draw([0.0, 0.0], eps, p)
    r = dist(pts, p)
    assert (pts > 0).all() and (pts <= 1).all() and (r <= eps + 1e-12).all()
    assert float((r <= eps / 2).double().mean()) == pytest.approx(0.25, abs=TOL)
    assert float((pts[:, 0] > pts[:, 1]).double().mean()) == pytest.approx(0.5, abs=TOL)
    # mean radius of a uniform 2-D ball: 2/3 eps (clamping piled points at r < eps)
    assert float(r.mean() / eps) == pytest.approx(2 / 3, abs=0.01)
    assert float(rate) > 0.5  # the reflected ball is the quarter ball itself


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_face_is_a_half_ball(p):
    eps = 0.3
    pts, _ = draw([0.5, 0.0], eps, p, seed=1)
    r = dist(pts - torch.tensor([0.5, 0.0], dtype=torch.float64), p)
    assert (pts[:, 1] > 0).all()
    assert float((r <= eps / 2).double().mean()) == pytest.approx(0.25, abs=TOL)
    assert float((pts[:, 0] > 0.5).double().mean()) == pytest.approx(0.5, abs=TOL)
    # the half ball's share with x_2 <= eps / 2: for l_2, (area of the disk segment) / (half disk)
    share = float((pts[:, 1] <= eps / 2).double().mean())
    expected = (1 - (1 - 0.5) ** 2) if p == 1 else \
        (math.pi / 2 - (math.acos(0.5) - 0.5 * math.sqrt(1 - 0.25))) / (math.pi / 2)
    assert share == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_interior_is_the_whole_ball(p):
    eps = 0.3
    x0 = torch.tensor([0.5, 0.5], dtype=torch.float64)
    pts, rate = draw([0.5, 0.5], eps, p, seed=2)
    r = dist(pts - x0, p)
    assert float((pts[:, 0] > 0.5).double().mean()) == pytest.approx(0.5, abs=TOL)
    assert float((r <= eps / 2).double().mean()) == pytest.approx(0.25, abs=TOL)
    assert float(rate) > 0.5


@pytest.mark.parametrize("p", [1.0, 2.0])
def test_near_corner_matches_plain_rejection(p):
    """A centre near (not on) the corner: the box proposal is used; compare the share with
    x_1 + x_2 > 0.3 with unlimited rejection from the ball."""
    eps, x0 = 0.4, [0.05, 0.1]
    pts, _ = draw(x0, eps, p, seed=3)
    g = torch.Generator().manual_seed(4)
    c = torch.tensor([x0], dtype=torch.float64).expand(200000, 2)
    ref = Region(eps, p, -math.inf, math.inf).random(c, g)
    ref = ref[((ref >= 0) & (ref <= 1)).all(-1)]
    assert float((pts.sum(-1) > 0.3).double().mean()) == pytest.approx(
        float((ref.sum(-1) > 0.3).double().mean()), abs=TOL + 0.005)
    assert (pts > 0).all()


def test_high_dimensional_saturated_pixels_are_exact():
    """64 dims, half the coordinates exactly 0 and some at 1 (a digit): every sample is
    strictly inside the box where the centre is on a face, and in the ball."""
    x0 = torch.zeros(3, 64, dtype=torch.float64)
    x0[:, 32:40] = 1.0
    x0[:, 40:] = torch.linspace(0.0625, 0.9375, 24, dtype=torch.float64)
    for p, eps in ((2.0, 0.5), (1.0, 1.0)):
        g = torch.Generator().manual_seed(0)
        pts, rate = Region(eps, p).uniform_with_rate(x0, 200, g)
        assert ((pts > 0) & (pts < 1)).all()
        assert Region(eps, p).contains(pts.reshape(-1, 64), x0.repeat(200, 1), tol=1e-9).all()
        assert (rate > 0).all()


def test_hopeless_acceptance_is_refused_with_the_centre_and_rate():
    """Just off the corner of [0,1]^64 with a large l_2 radius, ball ∩ box is a sliver of
    both proposals (rate ~1e-7): refused, naming the centre and the rate, not clamped."""
    x0 = torch.full((2, 64), 0.5, dtype=torch.float64)
    x0[1] = 0.01
    with pytest.raises(SamplingError, match=r"centre 1: the acceptance rate .* below"):
        Region(torch.tensor([0.1, 3.0]), 2.0).uniform_with_rate(
            x0, 50, torch.Generator().manual_seed(0))


def test_radius_zero_gives_the_centre():
    x0 = torch.rand(4, 5, dtype=torch.float64)
    pts, rate = Region(0.0, 2.0).uniform_with_rate(x0, 3)
    assert torch.equal(pts, x0.expand(3, 4, 5)) and (rate == 1).all()


def test_linf_unchanged_and_rate_one():
    x0 = torch.rand(4, 5, generator=torch.Generator().manual_seed(1))
    a = Region(0.2, math.inf).uniform(x0, 7, torch.Generator().manual_seed(5))
    b, rate = Region(0.2, math.inf).uniform_with_rate(x0, 7, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and (rate == 1).all()
