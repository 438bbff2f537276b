"""Every loss and estimate is finite or refused with its place in the spec (issue 18 item 4,
case bughunt/16): a ratio by norm(x - x0) is 0/0 at x = x0 (FGSM's start, eps = 0), and
guarded norms have no gradient at x0, so FGSM from the centre was a silent no-op."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import specrob
from specrob.data import load_data
from specrob.logic import CompiledProperty
from specrob.logic.finite import NonFiniteError
from specrob.search.region import Region
from specrob.search.searches import fgsm
from specrob.network.model_file import build_model
from specrob.training.trainer import TrainConfig, Trainer
from tests.conftest import REPO

MLP = REPO / "examples" / "digits_mlp.py"
RATIO = """property Ratio(eps: nonneg[input] = 0.1, L: nonneg[output/input] = 10.0):
    centres: test
    forall x in ball(x0, eps, 2):
        norm(f(x) - f(x0), 2) / norm(x - x0, 2) <= L
"""


def ratio(write, **overrides):
    return specrob.load(write(RATIO, "ratio.rspec"), **overrides)["Ratio"]


def net_and_points(n=64, batch=8):
    torch.manual_seed(0)
    return nn.Linear(n, 10), torch.rand(batch, n), torch.zeros(batch, dtype=torch.long)


def test_loss_at_the_centre_names_the_division_and_its_place(write):
    prop = ratio(write)
    net, x, y = net_and_points()
    c = CompiledProperty(prop, 64)
    with pytest.raises(NonFiniteError) as info:
        c.loss(net, x, x, y)
    text = str(info.value)
    assert "ratio.rspec:4:9" in text
    assert "division by norm(x - x0, 2), which is 0 at x = x0" in text
    assert "--search pgd" in text and "^^^^" in text
    with pytest.raises(NonFiniteError, match="satisfaction check"):
        c.holds(net, x, x, y)  # a NaN comparison is not a silent violation


@pytest.mark.parametrize("logic", ["dl2", "goedel", "product", "yager:3"])
def test_loss_is_finite_away_from_the_centre(write, logic):
    prop = ratio(write)
    net, x, y = net_and_points()
    c = CompiledProperty(prop, 64, logic)
    xs = Region(0.1, 2.0).random(x)
    assert torch.isfinite(c.loss(net, xs, x, y)).all()


@pytest.mark.parametrize("spec", ["lr.rspec", "lipschitz.rspec"])
def test_fgsm_moves_off_the_centre_where_the_gradient_vanishes(spec):
    """LR / local Lipschitz: the guarded norms have gradient 0 at x = x0, so FGSM from the
    centre used to return x0 itself (constraint loss 0 in every batch)."""
    prop = specrob.load(REPO / "specs" / spec)
    prop = prop.properties[0]
    net, x, y = net_and_points()
    c = CompiledProperty(prop, 64)
    x_star = c.worst_point(net, x, y, fgsm(), generator=torch.Generator().manual_seed(0))
    assert ((x_star - x).abs().amax(-1) > 0).all()
    assert c.region.contains(x_star, x).all()


def test_fgsm_from_the_centre_is_unchanged_where_there_is_a_gradient():
    prop = specrob.load(REPO / "specs" / "cr.rspec", eps=0.1)["CR"]
    net, x, y = net_and_points()
    c = CompiledProperty(prop, 64)
    x_star = c.worst_point(net, x, y, fgsm())
    direction = (x_star - x)
    assert torch.allclose(direction.abs().amax(-1), torch.full((8,), 0.1), atol=1e-6) or \
        ((x_star == 0) | (x_star == 1) | ((direction.abs() - 0.1).abs() < 1e-6)).all()


def small_trainer(prop, **config):
    torch.manual_seed(0)
    import dataclasses
    data = load_data("digits")
    data = dataclasses.replace(data, x_train=data.x_train[:192], y_train=data.y_train[:192])
    cfg = TrainConfig(epochs=1, steps=2, eval_points=64, eval_steps=2, **config)
    return Trainer(build_model(MLP, data.input_dim, data.classes), prop, data, cfg,
                   progress=False)


def test_training_at_eps_0_on_an_undefined_ratio_is_refused(write):
    with pytest.raises(NonFiniteError, match="division by norm"):
        small_trainer(ratio(write, eps=0.0)).fit()


def test_training_ratio_with_fgsm_is_finite(write):
    rows = small_trainer(ratio(write, L=0.05), search="fgsm").fit()
    assert all(math.isfinite(v) for v in rows[-1].values() if isinstance(v, float))
    assert rows[-1]["batch_constraint_loss"] > 0


def test_training_lr_with_fgsm_acts():
    prop = specrob.load(REPO / "specs" / "lr.rspec", L=0.5).properties[0]
    rows = small_trainer(prop, search="fgsm").fit()
    assert rows[-1]["batch_constraint_loss"] > 0


@pytest.mark.parametrize("logic", ["dl2", "yager:3"])
def test_cr_at_eps_0_is_classification_and_finite(logic):
    prop = specrob.load(REPO / "specs" / "cr.rspec", eps=0.0)["CR"]
    rows = small_trainer(prop, logic=logic, search="fgsm").fit()
    assert all(math.isfinite(v) for v in rows[-1].values() if isinstance(v, float))
    assert rows[-1]["test_satisfied"] == pytest.approx(
        min(rows[-1]["test_accuracy"], 1.0), abs=0.05)


def test_cli_refuses_nan_with_the_position_and_exit_2(tmp_path, write):
    from typer.testing import CliRunner

    from specrob.cli import app
    spec = write(RATIO, "ratio.rspec")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(MLP), str(spec), "--set", "eps=0",
                                      "--epochs", "1", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "ratio.rspec:4:9" in result.output and "Traceback" not in result.output
    metrics = out / "metrics.json"
    assert not metrics.exists() or "NaN" not in metrics.read_text()
