"""What a user reads: --version, eval --property and --quiet, counterexample rows with the
predicted class, logits and distance, pictures for image data, export with an external-data
model (shared cases newcomer/*)."""
from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import specrob
from specrob.cli import app
from tests.conftest import REPO, export_mlp

CR = str(REPO / "specs" / "cr.rspec")


def invoke(*args, code: int = 0):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_mlp(tmp_path_factory.mktemp("m") / "m.onnx", hidden=16)


def test_version():
    assert invoke("--version").output.strip() == f"specrob {specrob.__version__}"


def test_eval_property_picks_one_declaration_and_names_the_closest(model, tmp_path):
    out = invoke("eval", model, CR, "--property", "CRR", "--out", tmp_path / "x", code=2).output
    assert "did you mean 'CR'" in out
    result = invoke("eval", model, CR, "--property", "CR", "--points", "3", "--samples", "3",
                    "--steps", "1", "--quiet", "--out", tmp_path / "e")
    assert "eps/s" not in result.output and "%|" not in result.output  # no progress bar
    assert list(json.loads((tmp_path / "e" / "results.json").read_text())["properties"]) == ["CR"]


def test_counterexample_rows_say_what_the_model_predicts_and_how_far(model, tmp_path):
    invoke("verify", model, CR, "--set", "eps=0.2", "--points", "8", "--quiet", "--out", tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    bad = [r for r in rows if r["verdict"] == "falsified"]
    assert bad
    for r in bad:
        assert r["predicted"] != r["label"] and len(r["logits"]) == 10
        assert 0 < r["distance"]["linf"] <= 0.2 + 1e-6
        assert max(range(10), key=lambda k: r["logits"][k]) == r["predicted"]
    assert (tmp_path / "counterexamples.png").stat().st_size > 1000  # digits are 8x8 images


def test_export_carries_the_external_data_file(tmp_path):
    net = nn.Sequential(nn.Linear(64, 10)).eval()
    path = tmp_path / "ext.onnx"
    import onnx
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, 64),), str(path), input_names=["x"],
                          dynamic_axes={"x": {0: "b"}}, dynamo=False)
    proto = onnx.load(str(path))
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.onnx.data", size_threshold=0)
    assert (tmp_path / "ext.onnx.data").exists()
    out = tmp_path / "bench"
    invoke("export", path, CR, "--points", "2", "--out", out)
    assert (out / "model.onnx.data").exists() or (out / "ext.onnx.data").exists()
    moved = tmp_path / "elsewhere"
    shutil.copytree(out, moved)
    invoke("verify", moved / "model.onnx", moved / "point_0.vnnlib", "--timeout", "10",
           "--out", tmp_path / "v")
