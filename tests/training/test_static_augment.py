"""Static augmentation (Casadio et al.'s released procedures): FGSM points that fool a reference
network, random walks of single-pixel steps; made once, cached in the run folder, reused on
resume."""
from __future__ import annotations

import hashlib

import pytest
import torch
from torch import nn

import specrob
from specrob.data import load_data
from specrob.reproduce.common import shrink
from specrob.training.static_augment import fgsm_points, random_walk_points
from tests.conftest import REPO, export_mlp

SPEC = REPO / "specs" / "cr.rspec"


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def test_fgsm_points_fool_the_reference_from_within_the_radius():
    data = load_data("digits")
    x, y = torch.tensor(data.x_test[:200]), torch.tensor(data.y_test[:200])
    net = small_net()
    points, labels = fgsm_points(net, x, y, (0.05, 0.1), 0.0, 1.0)
    assert 0 < len(points) <= 2 * len(x) and len(labels) == len(points)
    with torch.no_grad():
        assert (net(points).argmax(-1) != labels).all()
    assert points.min() >= 0 and points.max() <= 1
    # each point is its source moved by 0.05 or 0.1 per coordinate at most (l_inf)
    src = torch.cdist(points, x, p=float("inf")).min(1).values
    assert (src <= 0.1 + 1e-6).all()


def test_a_random_walk_stops_just_past_the_distance():
    torch.manual_seed(0)
    x = torch.rand(300, 20)
    x[:, :10] = 0.0  # saturated pixels: steps below 0 are clamped
    walks = random_walk_points(x, 0.1, 0.1, 0.0, 1.0, torch.Generator().manual_seed(1))
    d = (walks - x).norm(dim=-1)
    assert (d > 0.1).all() and (d <= 0.2 + 1e-6).all()  # the last step adds at most 0.1
    assert walks.min() >= 0 and walks.max() <= 1
    again = random_walk_points(x, 0.1, 0.1, 0.0, 1.0, torch.Generator().manual_seed(1))
    assert torch.equal(walks, again)


def _digits():
    return shrink(load_data("digits"), 256, 64)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_random_walk_training_caches_its_points_and_resumes_on_them(tmp_path):
    data = _digits()
    config = specrob.TrainConfig(regime="augmentation", augment="random-walk", epochs=1,
                                 eval_points=16)
    specrob.train(small_net(), SPEC, data=data, config=config, out=tmp_path / "t",
                  export=False, progress=False)
    cached = tmp_path / "t" / "augmented.pt"
    saved = torch.load(cached, weights_only=True)
    assert saved["x"].shape == (256, 64) and torch.equal(saved["y"], torch.tensor(data.y_train))
    before = _digest(cached)
    longer = specrob.TrainConfig(regime="augmentation", augment="random-walk", epochs=2,
                                 eval_points=16)
    result = specrob.train(small_net(), SPEC, data=data, config=longer, out=tmp_path / "t",
                           export=False, progress=False)
    assert result.resumed_after == 1 and len(result.metrics) == 2
    assert _digest(cached) == before


def test_static_fgsm_needs_its_reference_and_is_bound_to_it(tmp_path):
    data = _digits()
    plain = dict(regime="augmentation", augment="static-fgsm", epochs=1, eval_points=16)
    with pytest.raises(specrob.SpecrobError, match="--reference MODEL.onnx"):
        specrob.train(small_net(), SPEC, data=data, config=specrob.TrainConfig(**plain),
                      out=tmp_path / "none", export=False, progress=False)
    first = export_mlp(tmp_path / "a.onnx", seed=1)
    config = specrob.TrainConfig(**plain, reference=str(first))
    specrob.train(small_net(), SPEC, data=data, config=config, out=tmp_path / "t",
                  export=False, progress=False)
    saved = torch.load(tmp_path / "t" / "augmented.pt", weights_only=True)
    assert 0 < len(saved["y"]) <= 2 * 256
    # the run is bound to the reference's contents, not to how its path is spelled
    same = specrob.TrainConfig(**{**plain, "epochs": 2},
                               reference=f"{first.parent}/./{first.name}")
    again = specrob.train(small_net(), SPEC, data=data, config=same, out=tmp_path / "t",
                          export=False, progress=False)
    assert again.resumed_after == 1
    # another network written at the same path: another run, refused without --fresh
    export_mlp(first, seed=2)
    with pytest.raises(specrob.SpecrobError, match="fresh"):
        specrob.train(small_net(), SPEC, data=data, config=config, out=tmp_path / "t",
                      export=False, progress=False)


def test_a_reference_is_refused_where_nothing_uses_it():
    for options in ({"regime": "baseline"}, {"regime": "augmentation", "augment": "random-walk"}):
        with pytest.raises(specrob.OptionError, match="only --regime augmentation --augment "
                                                      "static-fgsm"):
            specrob.TrainConfig(**options, reference="model.onnx")


def test_the_cli_refuses_static_fgsm_without_a_reference(tmp_path):
    from typer.testing import CliRunner

    from specrob.cli import app
    result = CliRunner().invoke(app, ["train", str(REPO / "examples" / "digits_mlp.py"),
                                      str(SPEC), "--regime", "augmentation", "--augment",
                                      "static-fgsm", "--epochs", "1", "--quiet", "--out",
                                      str(tmp_path / "t")])
    assert result.exit_code == 2 and "--reference MODEL.onnx" in result.output
    assert "Traceback" not in result.output
