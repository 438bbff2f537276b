"""A property compiled against a network: worst points, losses, satisfaction, network calls."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import specrob
from specrob.logic import CompiledProperty
from specrob.search import PGD, Sampling
from tests.conftest import REPO

LOGICS = ["dl2", "goedel", "lukasiewicz", "product", "yager"]


def tiny_net() -> nn.Module:
    """A fixed 2-input ReLU network with 3 classes whose ReLU kinks cross [0, 1]^2."""
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        net[0].weight.mul_(8)
        net[0].bias.copy_(-(net[0].weight * torch.rand(16, 2)).sum(-1))
    return net


def brute_force_fraction(net, x0, y, eps, grid=201) -> float:
    """The fraction of a dense grid of the l_inf ball (∩ [0,1]^2) where argmax f != y."""
    t = torch.linspace(-eps, eps, grid)
    xs = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2) + x0
    xs = xs[((xs >= 0) & (xs <= 1)).all(-1)]
    with torch.no_grad():
        return (net(xs).argmax(-1) != y).float().mean().item()


@pytest.fixture(scope="module")
def centres():
    net = tiny_net()
    torch.manual_seed(0)
    x0 = torch.rand(400, 2)
    with torch.no_grad():
        y = net(x0).argmax(-1)
    frac = torch.tensor([brute_force_fraction(net, x0[i], y[i], 0.08) for i in range(400)])
    assert 5 <= (frac > 0).sum() <= 395  # both kinds of centres are present
    return net, x0, y, frac


@pytest.mark.parametrize("logic", LOGICS)
def test_constraint_loss_is_positive_at_a_brute_force_counterexample(centres, logic):
    net, x0, y, frac = centres
    i = int(torch.where(frac < 0.5, frac, 0.0).argmax())  # a centre with a real counterexample
    assert frac[i] > 0.05
    c = CompiledProperty(specrob.loads("property P = CR(eps = 0.08)\n")["P"], 2, logic)
    x_star = c.worst_point(net, x0[i:i + 1], y[i:i + 1], PGD(steps=30, restarts=3))
    assert c.loss(net, x_star, x0[i:i + 1], y[i:i + 1]).item() > 0


def test_the_search_finds_almost_every_brute_force_counterexample(centres):
    net, x0, y, frac = centres
    violated = frac > 0
    c = CompiledProperty(specrob.loads("property P = CR(eps = 0.08)\n")["P"], 2)
    x_star = c.worst_point(net, x0, y, PGD(steps=30, restarts=3))
    found = ~c.holds(net, x_star, x0, y)
    loss = c.loss(net, x_star, x0, y)
    assert torch.equal(loss > 0, found)                  # the loss is positive at violations
    assert not (found & ~violated).any()                 # every violation found is real
    assert found[violated].float().mean() >= 0.95        # slivers at the ball's corner may hide


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_worst_points_stay_in_ball_and_domain(p):
    net = tiny_net()
    norm = "inf" if p == math.inf else int(p)
    prop = specrob.loads(f"property P = SR(eps = 0.2, delta = 0.01, p = {norm})\n")["P"]
    c = CompiledProperty(prop, 2)
    x0 = torch.rand(64, 2)
    for search in (PGD(steps=10, restarts=2), Sampling(samples=5)):
        x = c.worst_point(net, x0, torch.zeros(64, dtype=torch.long), search)
        assert c.region.contains(x, x0).all()


class Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_one_network_call_per_network_application_per_step():
    """SR mentions f(x) and f(x0): f(x0) once, f(x) once per PGD step (+ the last point),
    whatever the batch size, the restarts and the index quantifiers."""
    net = Counting(tiny_net())
    c = CompiledProperty(specrob.loads("property P = SR(eps = 0.1, delta = 0.1)\n")["P"], 2)
    c.worst_point(net, torch.rand(100, 2), torch.zeros(100, dtype=torch.long),
                  PGD(steps=10, restarts=4))
    assert net.calls == 1 + 11
    net.calls = 0
    cr = CompiledProperty(specrob.loads("property P = CR(eps = 0.1)\n")["P"], 2)
    cr.worst_point(net, torch.rand(100, 2), torch.zeros(100, dtype=torch.long), PGD(steps=10))
    assert net.calls == 11  # CR never looks at f(x0)


def test_spec_loss_drops_into_a_training_loop():
    net = tiny_net()
    spec = specrob.load(specrob_specs() / "cr.rspec", eps=0.1)
    constraint = specrob.constraint_loss(spec, net, logic="dl2", search="pgd", steps=5)
    x, y = torch.rand(32, 2), torch.randint(0, 3, (32,))
    value = constraint(x, y)
    assert value.dim() == 0 and value.item() >= 0
    value.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def specrob_specs():
    from specrob.resources import specs_dir
    return specs_dir()


# --- the direct objective of CR's body equals the formula engine's -----------------------------

@pytest.mark.parametrize("ties", [False, True])
def test_the_margin_objective_is_the_engines_to_the_bit(ties):
    import specrob
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    if ties:  # classes 1 and 2 share their weights: their logits tie everywhere
        with torch.no_grad():
            net[2].weight[2] = net[2].weight[1]
            net[2].bias[2] = net[2].bias[1]
    compiled = CompiledProperty(specrob.load(REPO / "specs" / "cr.rspec")["CR"], 6)
    assert compiled.margin_body
    x0, y = torch.rand(25, 6), torch.randint(0, 4, (25,))
    y[:5] = 1  # the tied class as the label
    fast = compiled.objective(net, x0, y, None)
    compiled.margin_body = False  # the general path: the compiled formulas
    general = compiled.objective(net, x0, y, None)
    for rows in (25, 75):  # one start per centre, and three restarts stacked
        x = torch.rand(rows, 6, requires_grad=True)
        a, b = fast(x), general(x)
        (ga,) = torch.autograd.grad(a.sum(), x)
        (gb,) = torch.autograd.grad(b.sum(), x)
        assert torch.equal(a, b) and torch.equal(ga, gb)
    x = torch.rand(25, 6)
    compiled.margin_body = True
    direct = compiled.holds(net, x, x0, y)
    compiled.margin_body = False
    assert torch.equal(direct, compiled.holds(net, x, x0, y))
    if ties:
        assert not bool(direct[:5].any())  # a tie with the label's logit is a violation


def test_only_the_exact_margin_body_takes_the_direct_objective():
    import specrob
    spec = specrob.loads(
        "property A = CR(eps = 0.1)\n"
        "property B(eps = 0.1):\n"
        "    forall x in ball(x0, eps, inf):\n"
        "        forall j != y: f(x)[y] >= f(x)[j]\n"
        "property C(eps = 0.1):\n"
        "    forall x in ball(x0, eps, inf):\n"
        "        forall j != y: f(x)[y] > f(x)[j] + 0.5\n")
    assert [CompiledProperty(spec[n], 4).margin_body for n in "ABC"] == [True, False, False]
