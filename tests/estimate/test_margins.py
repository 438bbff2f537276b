"""Margins by an ensemble of attacks with a binary search to the boundary (seed 001 §3.2),
margin curves, their area, and Proposition 6."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

import specrob
from specrob.estimate.margins import (
    Margins,
    accuracy_lower_bound,
    boundary_search,
    deepfool,
    ensemble_margins,
    margin_curve,
    margin_score_summary,
)
from specrob.stats import Estimate

DUAL = {2.0: 2.0, math.inf: 1.0, 1.0: math.inf}


def linear(classes: int, n: int = 4, seed: int = 0) -> nn.Linear:
    """A linear classifier whose decision boundaries all pass through the box's centre."""
    torch.manual_seed(seed)
    model = nn.Linear(n, classes)
    with torch.no_grad():
        model.bias.copy_(-model.weight @ torch.full((n,), 0.5))
    return model


def points(count: int = 40, n: int = 4, seed: int = 1) -> torch.Tensor:
    """Points near the centre: their projections onto the boundaries stay inside [0, 1]^n."""
    return 0.4 + 0.2 * torch.rand(count, n, generator=torch.Generator().manual_seed(seed))


def closed_form(model: nn.Linear, x: torch.Tensor, p: float) -> torch.Tensor:
    """The l_p distance to the decision boundary of a linear classifier:
    min_{k != c} (f_c - f_k)(x) / ||w_c - w_k||_q with q the dual norm (|w.x + b| / ||w||_2 for
    two classes and p = 2)."""
    with torch.no_grad():
        f = model(x)
    c = f.argmax(-1)
    w, q = model.weight, DUAL[p]
    out = torch.full((len(x),), math.inf)
    for k in range(w.shape[0]):
        gap = f[torch.arange(len(x)), c] - f[:, k]
        dw = w[c] - w[k]
        n = dw.abs().amax(-1) if q == math.inf else dw.abs().sum(-1) if q == 1 else dw.norm(dim=-1)
        out = torch.where(c == k, out, torch.minimum(out, gap / n))
    return out


@pytest.mark.parametrize("classes", [2, 3])
def test_deepfool_l2_margin_of_a_linear_classifier_is_the_distance_to_its_boundary(classes):
    model, x = linear(classes), points()
    found = ensemble_margins(model, x, p=2.0, attacks=("deepfool",))
    assert torch.allclose(found.margin, closed_form(model, x, 2.0), atol=1e-3)
    if classes == 2:
        w = model.weight[1] - model.weight[0]
        b = model.bias[1] - model.bias[0]
        with torch.no_grad():
            assert torch.allclose(found.margin, (x @ w + b).abs() / w.norm(), atol=1e-3)


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("p", [2.0, math.inf])
def test_ensemble_margin_of_a_linear_classifier_is_exact(classes, p):
    model, x = linear(classes), points()
    found = ensemble_margins(model, x, p=p, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(found.margin, closed_form(model, x, p), atol=1e-3)
    assert found.attacks == ("fgsm", "pgd", "deepfool")
    # the ensemble takes the smallest distance over the attacks, and names the attack
    assert torch.equal(found.margin, found.distances.amin(0))
    assert torch.equal(found.distances[found.winner, torch.arange(len(x))], found.margin)


def test_l1_margin_is_an_upper_bound_of_the_distance():
    model, x = linear(3), points()
    found = ensemble_margins(model, x, p=1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(found.margin).all()
    assert (found.margin >= closed_form(model, x, 1.0) - 1e-5).all()


@pytest.mark.parametrize("classes", [2, 3])
def test_boundary_point_has_its_two_top_logits_equal(classes):
    model, x = linear(classes), points()
    found = ensemble_margins(model, x, p=2.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        top = model(found.boundary).topk(2, dim=-1).values
        assert (top[:, 0] - top[:, 1] < 1e-3).all()
        # on the adversarial side: the predicted label did change
        assert (model(found.boundary).argmax(-1) != found.label).all()
    assert torch.allclose((found.boundary - x).norm(dim=-1), found.margin)


def test_bisection_finds_the_crossing_on_the_segment():
    model = linear(2, n=1)  # boundary at 0.5
    x = torch.tensor([[0.1], [0.2], [0.45]])
    far = torch.tensor([[0.9], [1.0], [0.3]])  # the last one does not cross the boundary
    hat, ok = boundary_search(model, x, far, model(x).argmax(-1), steps=30)
    assert ok.tolist() == [True, True, False]
    assert hat[:2, 0].tolist() == pytest.approx([0.5, 0.5], abs=1e-6)


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def test_every_margin_of_an_mlp_is_witnessed_by_an_adversarial_boundary_point():
    model = mlp()
    x = torch.rand(30, 6, generator=torch.Generator().manual_seed(2))
    found = ensemble_margins(model, x, p=2.0, steps=10, generator=torch.Generator().manual_seed(0))
    finite = torch.isfinite(found.margin)
    assert finite.float().mean() > 0.9
    with torch.no_grad():
        assert (model(found.boundary[finite]).argmax(-1) != found.label[finite]).all()
    assert torch.allclose((found.boundary[finite] - x[finite]).norm(dim=-1), found.margin[finite])
    assert ((found.boundary[finite] >= 0) & (found.boundary[finite] <= 1)).all()
    assert (found.winner[~finite] == -1).all() and torch.isnan(found.boundary[~finite]).all()
    shares = found.shares()
    assert set(shares) == {"fgsm", "pgd", "deepfool"}
    assert sum(s.value for s in shares.values()) == pytest.approx(1.0)
    assert found.as_dict()["found"] == int(finite.sum())


def test_deepfool_crosses_the_boundary_of_an_mlp():
    model = mlp(1)
    x = torch.rand(20, 6, generator=torch.Generator().manual_seed(3))
    adv = deepfool(model, x, p=math.inf)
    with torch.no_grad():
        changed = model(adv).argmax(-1) != model(x).argmax(-1)
    assert changed.float().mean() > 0.8


def fake(margins: list[float]) -> Margins:
    m = torch.tensor(margins)
    return Margins(m, torch.zeros(len(m), dtype=torch.long), torch.zeros(len(m), 1),
                   m[None], torch.zeros(len(m), dtype=torch.long), ("deepfool",), 2.0)


def test_margin_curve_counts_points_whose_margin_exceeds_eps():
    curve = margin_curve(fake([0.1, 0.5, math.inf, 0.3]), d=1.0, eps=[0.0, 0.2, 0.4, 1.0])
    assert [r.value for r in curve.robust] == [1.0, 0.75, 0.5, 0.25]
    assert all(r.count == 4 and r.low <= r.value <= r.high for r in curve.robust)
    # the area is the mean of min(margin, d): no adversarial example found counts as d
    assert curve.area.value == pytest.approx((0.1 + 0.5 + 1.0 + 0.3) / 4)
    assert curve.score.value == pytest.approx(curve.area.value)  # d = 1


def test_margin_curve_is_non_increasing_and_its_area_is_the_capped_mean_margin():
    model = mlp()
    x = torch.rand(40, 6, generator=torch.Generator().manual_seed(4))
    found = ensemble_margins(model, x, p=2.0, steps=5, generator=torch.Generator().manual_seed(0))
    d, grid = 1.5, 400
    curve = margin_curve(found, d=d, grid=grid)
    values = [r.value for r in curve.robust]
    assert all(b <= a for a, b in itertools.pairwise(values))
    assert values[0] == 1.0  # R(0): every point lies off the boundary (the curve uses f(x))
    assert curve.area.value == pytest.approx(found.margin.double().clamp(max=d).mean().item())
    # the trapezoid rule on a step function is within half a cell of the exact area
    assert abs(curve.area_trapezoid - curve.area.value) <= d / grid / 2 + 1e-12
    assert curve.score.value == pytest.approx(curve.area.value / d)
    # label-aware: misclassified points have margin 0, so R(0) is the accuracy
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(5))
    correct = found.label == y
    aware = margin_curve(found, d=d, grid=grid, correct=correct)
    assert aware.robust[0].value == pytest.approx(correct.float().mean().item())
    assert all(a.value <= b.value for a, b in zip(aware.robust, curve.robust))


def test_proposition_6_accuracy_bound():
    assert accuracy_lower_bound(0.9, delta=0.05, eps_label=0.02) == pytest.approx(0.83)
    assert accuracy_lower_bound(0.9, delta=0.1) == pytest.approx(0.8)
    assert accuracy_lower_bound(0.1, delta=0.5) == 0.0  # a vacuous bound is clipped at 0
    est = accuracy_lower_bound(Estimate(0.9, 0.85, 0.94, 100), delta=Estimate(0.1, 0.05, 0.2, 50))
    assert est.value == pytest.approx(0.8)
    assert est.low == pytest.approx(0.65) and est.high == pytest.approx(0.89)
    assert est.count == 50


def test_margin_score_summary_reads_the_score():
    score = specrob.load("specs/margin.rspec", d=1.0)["margin_area"]
    model, x = linear(3), points(20)
    y = model(x).argmax(-1).detach()
    out = margin_score_summary(score, model, x, y, grid=10, seed=0)
    assert out["upper_bound"] and out["d"] == 1.0 and out["norm"] == "2"
    assert len(out["curve"]) == 11 and out["accuracy"]["value"] == 1.0
    margins = closed_form(model, x, 2.0).double().clamp(max=1.0)
    assert out["value"]["value"] == pytest.approx(margins.mean().item(), abs=1e-3)
    assert out["area"]["value"] == pytest.approx(margins.mean().item(), abs=1e-3)
