"""An .npz of x and y alone is the list of centres as given for `verify`, `eval` and `export`:
every point, in the file's order, `index` the row of the file; the number of classes is the
model's output width, not the labels present (issue 10, item 1)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from specrob.cli import app
from specrob.data import load_data
from specrob.runfolder import JsonLines
from tests.conftest import REPO

CR = str(REPO / "specs" / "cr.rspec")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def export(net: nn.Module, path, shape) -> str:
    torch.onnx.export(net.eval(), (torch.rand(1, *shape),), str(path), input_names=["x"],
                      output_names=["y"], dynamo=False)
    return str(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A flat 64-10 MLP and an NCHW (1, 1, 8, 8) CNN, both with ten outputs."""
    folder = tmp_path_factory.mktemp("given")
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                        nn.Linear(36, 10))
    return export(mlp, folder / "mlp.onnx", (64,)), export(cnn, folder / "cnn.onnx", (1, 8, 8))


def five_points(path, labels=(3, 7, 3, 7, 3), shape=(64,)):
    """Five digits of two classes (3 and 7 by default), in a chosen order and shape."""
    digits = load_data("digits")
    x = np.asarray(digits.x_test[:5]).reshape(5, *shape)
    np.savez(path, x=x, y=np.asarray(labels))
    return path


def rows(out):
    return sorted(((r["index"], r["label"]) for r in JsonLines(out / "results.jsonl").rows()))


def test_load_data_reads_x_y_as_given_or_splits_them_for_training(tmp_path):
    path = str(five_points(tmp_path / "p.npz"))
    given = load_data(path, split=False)
    assert given.given and given.test_size == 5 and list(given.y_test) == [3, 7, 3, 7, 3]
    np.testing.assert_array_equal(given.x_test, given.x_train)
    assert not load_data(path).given  # training splits it as before
    x = np.random.default_rng(0).random((4, 3))
    np.savez(tmp_path / "s.npz", x_train=x, y_train=[0, 1, 0, 1], x_test=x[:2], y_test=[1, 0])
    split = load_data(str(tmp_path / "s.npz"), split=False)
    assert split.train_size == 4 and list(split.y_test) == [1, 0]


def test_verify_uses_every_point_of_the_file_with_its_index(models, tmp_path):
    mlp, _ = models
    data = five_points(tmp_path / "p.npz")
    out = tmp_path / "v"
    result = invoke("verify", mlp, CR, "--data", data, "--set", "eps=0.001", "--backend",
                    "bounds", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    assert rows(out) == [(0, 3), (1, 7), (2, 3), (3, 7), (4, 3)]
    assert json.loads((out / "summary.json").read_text())["centres"]["available"] == 5


def mixed_points(tmp_path, model):
    """Five digits labelled as the model predicts, except points 0 and 2 (misclassified),
    and a CR spec over the correctly classified centres."""
    from specrob.network import load_onnx_checked
    x = np.asarray(load_data("digits").x_test[:5])
    with torch.no_grad():
        predicted = load_onnx_checked(model)[1](torch.tensor(x)).argmax(-1).numpy()
    labels = predicted.copy()
    labels[[0, 2]] = (predicted[[0, 2]] + 1) % 10
    np.savez(tmp_path / "m.npz", x=x, y=labels)
    spec = tmp_path / "cr.rspec"
    spec.write_text("property CR(eps: nonneg[input] = 0.001):\n    centres: test where "
                    "correct\n    forall x in ball(x0, eps, inf):\n        argmax(f(x)) == y\n")
    return tmp_path / "m.npz", spec


def test_where_correct_keeps_the_index_of_the_file(models, tmp_path):
    mlp, _ = models
    data, spec = mixed_points(tmp_path, mlp)
    out = tmp_path / "v"
    result = invoke("verify", mlp, spec, "--data", data, "--backend", "bounds", "--quiet",
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert [i for i, _ in rows(out)] == [1, 3, 4]
    result = invoke("export", mlp, spec, "--data", data, "--out", tmp_path / "x")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "x").glob("point_*.vnnlib"))
    assert names == ["point_1.vnnlib", "point_3.vnnlib", "point_4.vnnlib"]


def test_flattened_data_for_an_nchw_model_and_images_for_a_flat_one(models, tmp_path):
    mlp, cnn = models
    for model, shape in ((cnn, (64,)), (mlp, (8, 8)), (cnn, (1, 8, 8))):
        data = five_points(tmp_path / f"p{len(shape)}.npz", shape=shape)
        out = tmp_path / f"v{len(shape)}{model[-8:-5]}"
        result = invoke("verify", model, CR, "--data", data, "--set", "eps=0.001",
                        "--backend", "bounds", "--quiet", "--out", out)
        assert result.exit_code == 0, result.output
        assert len(rows(out)) == 5


def test_a_label_beyond_the_models_classes_names_its_index(models, tmp_path):
    mlp, _ = models
    data = five_points(tmp_path / "p.npz", labels=(3, 7, 3, 12, 10))
    for command in (("verify", "--backend", "bounds"), ("eval", "--eps", "0.01"),
                    ("export",)):
        result = invoke(command[0], mlp, CR, *command[1:], "--data", data, "--out",
                        tmp_path / command[0], *(("--quiet",) if command[0] != "export" else ()))
        assert result.exit_code == 2, result.output
        assert "y[3] = 12" in result.stderr and "10 outputs" in result.stderr


def test_a_wrong_input_size_is_a_clear_error(models, tmp_path):
    mlp, _ = models
    x = np.random.default_rng(0).random((3, 10))
    np.savez(tmp_path / "p.npz", x=x, y=[0, 1, 0])
    result = invoke("verify", mlp, CR, "--data", tmp_path / "p.npz", "--out", tmp_path / "v")
    assert result.exit_code == 2 and "64 inputs" in result.stderr


def test_eval_and_export_use_the_points_as_given(models, tmp_path):
    mlp, _ = models
    data = five_points(tmp_path / "p.npz")
    out = tmp_path / "e"
    result = invoke("eval", mlp, CR, "--data", data, "--eps", "0,0.01", "--samples", "4",
                    "--steps", "2", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    centres = json.loads((out / "results.json").read_text())["properties"]["CR"]["centres"]
    assert centres["available"] == 5 and centres["used"] == 5
