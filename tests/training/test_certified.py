"""Certified training (`--regime certified`): the property's rows bounded through the live
network by IBP / CROWN-IBP (sound, checked by exhaustive search and against the verifier's
bounds), the worst-case loss in the chosen logic, the ramp, and the regime end to end: its
networks are what `specrob verify` proves more of."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import specrob
from specrob.bounds import spec_bounds
from specrob.data import load_data
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder
from specrob.logic.logics import make_logic
from specrob.network import load_onnx
from specrob.network.model_file import build_model
from specrob.training.certified import CertifiedError, CertifiedLoss, Schedule
from specrob.training.config import TrainConfig
from tests.conftest import REPO, train_cli_output
from tests.network.test_field_networks import export

SPEC = """
property CR(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        forall j != y: f(x)[y] > f(x)[j]

property SR(eps: nonneg[input] = 0.1, delta: nonneg[output] = 0.5):
    centres: test
    forall x in ball(x0, eps, inf):
        norm(f(x) - f(x0), inf) <= delta

property EITHER(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        f(x)[0] > f(x)[1] or f(x)[0] > f(x)[2]

property SCR(eps: nonneg[input] = 0.1, eta: prob = 0.6):
    centres: test
    forall x in ball(x0, eps, inf):
        softmax(f(x))[y] >= eta

property CR_L2(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, 2):
        forall j != y: f(x)[y] > f(x)[j]

property CR_L1(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, 1):
        forall j != y: f(x)[y] > f(x)[j]

property ABOVE(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        f(x)[y] >= 20 * x0[1] - 10

property LR(eps: nonneg[input] = 0.1):
    centres: test
    forall x in ball(x0, eps, inf):
        norm(f(x) - f(x0), inf) <= 2 * norm(x - x0, inf)
"""


@pytest.fixture(scope="module")
def spec():
    return specrob.loads(SPEC)


def tiny_net(inputs: int = 2, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, 12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(),
                         nn.Linear(12, classes)).double()


def grid_minimum(model: nn.Module, x0: torch.Tensor, eps: float, C: torch.Tensor,
                 d: torch.Tensor, side: int = 301, p: float = math.inf) -> torch.Tensor:
    """min over a side x side grid of the 2-d ball B_p(x0, eps) ∩ [0, 1]^2 of every row
    C f(x) + d: (K,)."""
    lo, hi = (x0 - eps).clamp(0, 1), (x0 + eps).clamp(0, 1)
    a = torch.linspace(0, 1, side, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)
    xs = lo + grid * (hi - lo)
    xs = xs[torch.linalg.vector_norm(xs - x0, ord=p, dim=1) <= eps]
    with torch.no_grad():
        return (model(xs) @ C.T + d).amin(0)


@pytest.mark.parametrize("bound", ["ibp", "crown-ibp"])
@pytest.mark.parametrize("name, p", [("CR", math.inf), ("SR", math.inf), ("SCR", math.inf),
                                     ("CR_L2", 2.0), ("CR_L1", 1.0)])
def test_the_lower_bounds_are_below_the_exhaustive_minimum_of_every_row(spec, bound, name, p):
    """Oracle: exhaustive search over a fine grid of the (2-d) ball."""
    model = tiny_net()
    cert = CertifiedLoss(spec[name], model, 2, 3, bound=bound, logic=make_logic("dl2"))
    x0 = torch.tensor([[0.3, 0.6], [0.9, 0.1], [0.5, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    fx0 = model(x0).detach()
    lower, batch = cert.lower(x0, y, fx0, eps_share=1.0, beta=1.0)
    for b in range(3):
        rows = q.output_rows(batch.formulas[b])
        C = torch.tensor(np.array([c for c, _ in rows]))
        d = torch.tensor([dd for _, dd in rows], dtype=torch.float64)
        truth = grid_minimum(model, x0[b], 0.1, C, d, p=p)
        assert torch.all(lower[b, :len(rows)] <= truth + 1e-12), (lower[b, :len(rows)] - truth)
        assert torch.all(lower[b, :len(rows)] >= truth - 20.0)  # a bound, not a placeholder


def test_ibp_bounds_equal_the_verifiers_ibp_bounds_on_the_exported_network(spec, tmp_path):
    """Oracle: `specrob.bounds.spec_bounds` on the network `specrob verify` reads (ONNX)."""
    model = tiny_net(inputs=6, classes=4).float()
    onnx_net = load_onnx(export(model, (6,), tmp_path / "m.onnx", fixed=False))
    model.double()
    cert = CertifiedLoss(spec["CR"], model, 6, 4, bound="ibp", logic=make_logic("dl2"))
    x0 = torch.rand(5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 0])
    lower, batch = cert.lower(x0, y, None, eps_share=0.5, beta=0.0)
    for b in range(5):
        rows = q.output_rows(batch.formulas[b])
        C = torch.tensor(np.array([c for c, _ in rows]))
        theirs = spec_bounds(onnx_net, x0[b:b + 1], 0.05, p=math.inf, low=0.0, high=1.0, C=C,
                             method="ibp")
        assert torch.allclose(lower[b, :len(rows)], theirs[0], atol=1e-5)


def test_crown_ibp_is_differentiable_in_every_parameter(spec):
    model = tiny_net()
    cert = CertifiedLoss(spec["CR"], model, 2, 3, bound="crown-ibp", logic=make_logic("dl2"),
                         cert_loss="ce")
    x0 = torch.rand(4, 2, dtype=torch.float64)
    lower, batch = cert.lower(x0, torch.tensor([0, 1, 2, 0]), None, eps_share=1.0, beta=0.7)
    cert.loss(lower, batch).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_the_losses_are_the_body_of_the_worst_cases_in_the_logic(spec):
    """Oracles: the formulas written out by hand for CR (a conjunction) and EITHER (an or)."""
    model = tiny_net()
    x0 = torch.rand(3, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    dl2 = CertifiedLoss(spec["CR"], model, 2, 3, bound="ibp", logic=make_logic("dl2"))
    lower, batch = dl2.lower(x0, y, None, eps_share=1.0, beta=0.0)
    assert lower.shape == (3, 2)
    assert torch.allclose(dl2.loss(lower, batch), torch.relu(-lower).sum(1))
    ce = CertifiedLoss(spec["CR"], model, 2, 3, bound="ibp", logic=make_logic("dl2"),
                       cert_loss="ce")
    expected = torch.log(1 + torch.exp(-lower).sum(1))  # CE of the worst-case logits
    assert torch.allclose(ce.loss(lower, batch), expected)
    goedel = CertifiedLoss(spec["EITHER"], model, 2, 3, bound="ibp",
                           logic=make_logic("goedel"))
    lower, batch = goedel.lower(x0, y, None, eps_share=1.0, beta=0.0)
    truth = 1 / (1 + torch.relu(-lower))  # Gödel's atom for L > 0, then max for `or`
    assert torch.allclose(goedel.loss(lower, batch), 1 - truth.amax(1))
    assert torch.equal(goedel.proved(lower, batch), (lower > 0).any(1))


def test_the_ramp_follows_the_schedule():
    s = Schedule(warmup=1.0, ramp=4.0, kappa=0.5, crown_end=0.0)
    assert s.at(0.5) == (0.0, 1.0, 1.0)
    share, kappa, beta = s.at(3.0)
    assert math.isclose(share, 0.5) and math.isclose(kappa, 0.75) and math.isclose(beta, 0.5)
    assert s.at(7.5) == (1.0, 0.5, 0.0)


@pytest.mark.parametrize("name, options, words", [
    ("LR", {}, ["'LR'", "norm", "--regime constraint"]),
    ("EITHER", {"cert_loss": "ce"}, ["'EITHER'", "disjunction", "--cert-loss logic"]),
])
def test_bodies_without_rows_are_refused_with_what_to_use(spec, name, options, words):
    with pytest.raises(CertifiedError) as error:
        CertifiedLoss(spec[name], tiny_net(), 2, 3, logic=make_logic("dl2"), **options)
    for word in words:
        assert word in str(error.value)


def test_the_rows_are_the_verifiers_rows(spec):
    """The loss bounds exactly the atoms the verifier proves (one encoder, one row list)."""
    cert = CertifiedLoss(spec["SR"], tiny_net(), 2, 3, logic=make_logic("dl2"))
    fx0 = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    _, batch = cert.lower(torch.rand(1, 2, dtype=torch.float64), torch.tensor([0]), fx0,
                             eps_share=1.0, beta=0.0)
    query = Encoder(spec["SR"], 2, 3).query(Centre(torch.rand(2).numpy(), 0, fx0[0].numpy()))
    assert [(list(c), d) for c, d in q.output_rows(batch.formulas[0])] == \
        [(list(c), d) for c, d in q.output_rows(query.body)]


def test_rows_that_read_x0_are_each_centres_own(spec):
    """A body with x0 in a row's constant is encoded per centre, not cached by label."""
    model = tiny_net()
    cert = CertifiedLoss(spec["ABOVE"], model, 2, 3, logic=make_logic("dl2"))
    x0 = torch.tensor([[0.5, 0.0], [0.5, 1.0]], dtype=torch.float64)
    lower, _ = cert.lower(x0, torch.tensor([2, 2]), None, eps_share=0.0, beta=0.0)
    with torch.no_grad():
        truth = model(x0)[:, 2] - (20 * x0[:, 1] - 10)
    assert torch.allclose(lower[:, 0], truth)


def test_what_certified_training_supports_is_said_for_large_input_indices(spec):
    from specrob.training.support import supports
    prop = specrob.loads(SPEC.replace("20 * x0[1] - 10", "20 * x0[20] - 10"))["ABOVE"]
    assert supports(prop)["certified"].level == "exact"
    assert supports(spec["LR"])["certified"].level == "no"
    huge = specrob.loads(SPEC.replace("20 * x0[1] - 10", "20 * x0[100000] - 10"))["ABOVE"]
    assert "beyond the dry run" in supports(huge)["certified"].note  # not a MemoryError


@pytest.mark.parametrize("options, words", [
    ({"regime": "constraint", "bound": "crown-ibp"}, ["bound", "only --regime certified"]),
    ({"regime": "certified", "epochs": 3, "warmup": 4.0, "ramp": 0.0},
     ["warmup", "at most --epochs = 3"]),
    ({"regime": "certified", "epochs": 3, "warmup": 1.0, "ramp": 4.0},
     ["ramp", "at most --epochs - --warmup = 2"]),
])
def test_certified_options_are_checked(options, words):
    from specrob.errors import OptionError
    with pytest.raises(OptionError) as error:
        TrainConfig(**options)
    for word in words:
        assert word in str(error.value)


def _train(tmp_path, regime: str, epochs: int, **options):
    data = load_data("digits")
    prop = specrob.loads(SPEC)
    torch.manual_seed(0)
    model = build_model(REPO / "examples" / "digits_mlp.py", data.input_dim, data.classes)
    config = TrainConfig(regime=regime, epochs=epochs, batch_size=64, lr=3e-3, eval_points=64,
                         eval_steps=5, **options)
    return specrob.train(model, prop["CR"], data=data, config=config, out=tmp_path,
                         progress=False, export=True)


def test_a_resumed_certified_run_is_the_uninterrupted_run(tmp_path):
    """The ramp reads the epoch and batch (in epochs, not shares of --epochs), so 1 + 1
    epochs = 2 epochs, bit for bit."""
    whole = _train(tmp_path / "whole", "certified", 2, bound="crown-ibp", warmup=0.25, ramp=0.5)
    _train(tmp_path / "parts", "certified", 1, bound="crown-ibp", warmup=0.25, ramp=0.5)
    parts = _train(tmp_path / "parts", "certified", 2, bound="crown-ibp", warmup=0.25, ramp=0.5)
    a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "parts" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole.metrics[-1]["eps_share"] == parts.metrics[-1]["eps_share"] == 1.0


def test_certified_training_gives_networks_the_verifier_proves_more_of(tmp_path):
    """What the regime is for: `specrob verify`'s constraint satisfaction against the
    constraint-trained network of the same budget, with the bound propagation it trained
    through (IBP). (On this 64-32-10 net CROWN proves both alike: about 60%; the Fashion-MNIST
    nets of docs/results/certified.md show the difference under CROWN.)"""
    verified = {}
    for regime, options in (("constraint", {}),
                            ("certified", {"cert_loss": "ce", "warmup": 0.5, "ramp": 4.0})):
        _train(tmp_path / regime, regime, 8, **options)
        out = specrob.verify(tmp_path / regime / "model.onnx", specrob.loads(SPEC),
                             property="CR", data="digits", out=tmp_path / f"v-{regime}",
                             progress=False,
                             config=specrob.VerifyConfig(backend="bounds", bounds="ibp",
                                                         points=100))
        verified[regime] = out.summary["verified"]
    assert verified["certified"] >= verified["constraint"] + 20, verified


def test_the_cli_trains_a_certified_network_and_refuses_a_batch_norm_model(tmp_path,
                                                                          monkeypatch):
    text = train_cli_output(tmp_path, monkeypatch, "--regime", "certified", "--bound",
                            "crown-ibp", "--set", "eps=0.05", "--out", "run", code=2)
    assert "--ramp" in text and "at most --epochs - --warmup = 0 epochs" in text
    text = train_cli_output(tmp_path, monkeypatch, "--regime", "certified", "--bound",
                            "crown-ibp", "--set", "eps=0.05", "--out", "run", "--warmup", "0.2",
                            "--ramp", "0.5", code=0)
    assert "wrote" in text and (tmp_path / "run" / "model.onnx").exists()
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "batch_certified" in metrics[-1]
    model = tmp_path / "bn.py"
    model.write_text("import torch.nn as nn\n"
                     "def build(input_dim, classes):\n"
                     "    return nn.Sequential(nn.Linear(input_dim, 8), nn.BatchNorm1d(8),\n"
                     "                         nn.ReLU(), nn.Linear(8, classes))\n")
    from typer.testing import CliRunner

    from specrob.cli import app
    result = CliRunner().invoke(app, ["train", str(model), str(REPO / "specs" / "cr.rspec"),
                                      "--regime", "certified", "--epochs", "1", "--warmup", "0",
                                      "--ramp", "1", "--quiet"])
    assert result.exit_code != 0
    assert "BatchNorm1d" in result.output and "Traceback" not in result.output


def test_a_network_collapsed_by_the_certified_loss_is_pointed_out(tmp_path):
    """A radius far too large for the ramp flattens the digits MLP to constant outputs: the
    run says so and what to change."""
    data = load_data("digits")
    torch.manual_seed(0)
    model = build_model(REPO / "examples" / "digits_mlp.py", data.input_dim, data.classes)
    messages: list[str] = []
    config = TrainConfig(regime="certified", epochs=2, warmup=0.0, ramp=0.2, eval_points=64,
                         eval_steps=2)
    prop = specrob.loads(SPEC, eps=0.3)["CR"]
    result = specrob.train(model, prop, data=data, config=config, out=tmp_path,
                           progress=False, export=False, log=messages.append)
    assert result.metrics[-1]["test_accuracy"] <= 0.15
    assert any("near chance" in m and "--ramp" in m for m in messages), messages


def test_the_pgd_mix_is_the_convex_combination_of_the_two_robust_losses(spec):
    """--pgd-mix alpha (MTL-IBP): kappa CE + (1 - kappa) ((1 - alpha) certified + alpha PGD
    constraint loss). Oracle: the three parts computed separately with the same PGD draws."""
    from specrob.logic import CompiledProperty
    from specrob.training.regimes import Certified, Context, search_of
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 12), nn.ReLU(), nn.Linear(12, 3))
    config = TrainConfig(regime="certified", cert_loss="ce", pgd_mix=0.3, kappa=0.6,
                         warmup=0.0, ramp=1.0, steps=3)
    ctx = Context(CompiledProperty(spec["CR"], 2), config, progress=2.0)  # after the ramp
    regime = Certified()
    regime.setup(model, ctx, 2)
    x = torch.rand(8, 2, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    torch.manual_seed(5)
    loss, logs = regime.loss(model, x, y, ctx)

    ce = torch.nn.functional.cross_entropy(model(x), y)
    lower, rows = regime.cert.lower(x, y, None, eps_share=1.0, beta=0.0)
    certified = regime.cert.loss(lower, rows).mean()
    torch.manual_seed(5)
    x_star = ctx.prop.worst_point(model, x, y, search_of(config), fx0=None)
    pgd = ctx.prop.loss(model, x_star, x, y, None).mean()
    expected = 0.6 * ce + 0.4 * (0.7 * certified + 0.3 * pgd)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert math.isclose(logs["batch_constraint_loss"], pgd.item(), rel_tol=1e-6)
    assert pgd.item() > 0 and certified.item() > 0  # both parts present
