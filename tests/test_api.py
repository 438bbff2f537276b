"""The public API (`specrob.api`, re-exported as `specrob.*`) is what the CLI runs: the same
inputs give the same results through both, results are typed and serialise to JSON, and user
errors are SpecrobErrors (never a bare exception)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import specrob
from specrob.cli import app
from specrob.estimate.evaluation import EvalConfig
from specrob.training.trainer import TrainConfig
from specrob.verification.pipeline import VerifyConfig
from tests.conftest import REPO, export_mlp

SPEC = REPO / "specs" / "cr.rspec"


def test_train_evaluate_verify_export_through_the_api(tmp_path):
    spec = specrob.load(SPEC, eps=0.01)
    trained = specrob.train(REPO / "examples" / "digits_mlp.py", spec, progress=False,
                            config=TrainConfig(epochs=1, steps=2), out=tmp_path / "t")
    assert trained.model.exists() and len(trained.metrics) == 1
    assert trained.onnx_difference < 1e-4
    report = specrob.evaluate(trained.model, spec, out=tmp_path / "e",
                              config=EvalConfig(eps=[0.0, 0.01], points=10, samples=5, steps=2))
    security = report.results["properties"]["CR"]
    assert security  # per eps entries
    proof = specrob.verify(trained.model, spec, progress=False, out=tmp_path / "v",
                           config=VerifyConfig(points=5, timeout=5))
    s = proof.summary
    assert s["verified"] + s["falsified"] + s["unknown"] == 5 == len(proof.rows)
    exported = specrob.export(trained.model, spec, points=3, out=tmp_path / "x")
    assert exported.queries == 3 and len(list((tmp_path / "x").glob("point_*.vnnlib"))) == 3
    for result in (trained, report, proof, exported):
        json.dumps(result.to_json())  # plain JSON values only


def test_the_cli_and_the_api_give_the_same_verdicts(tmp_path):
    model = export_mlp(tmp_path / "m.onnx")
    api = specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=tmp_path / "api",
                         config=VerifyConfig(points=6, timeout=5))
    result = CliRunner().invoke(app, ["verify", str(model), str(SPEC), "--set", "eps=0.02",
                                      "--points", "6", "--timeout", "5", "--quiet", "--out",
                                      str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    cli = [json.loads(line) for line in (tmp_path / "cli" / "results.jsonl").read_text()
           .splitlines()]
    assert [r["verdict"] for r in sorted(cli, key=lambda r: r["index"])] == \
        [r["verdict"] for r in sorted(api.rows, key=lambda r: r["index"])]


def test_user_errors_are_specrob_errors(tmp_path):
    model = export_mlp(tmp_path / "m.onnx", inputs=3)
    with pytest.raises(specrob.UsageError, match="takes 3 inputs"):
        specrob.verify(model, SPEC, progress=False, out=tmp_path / "v")
    with pytest.raises(specrob.UsageError, match="did you mean 'CR'"):
        specrob.verify(model, SPEC, property="CRR", progress=False, out=tmp_path / "v")
    with pytest.raises(specrob.SpecError):
        specrob.verify(model, SPEC, set=["epss=1"], progress=False, out=tmp_path / "v")


def test_constraint_loss_is_the_api_for_a_training_loop():
    import torch
    from torch import nn
    spec = specrob.load(SPEC, eps=0.05)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 10))
    x, y = torch.rand(4, 64), torch.tensor([0, 1, 2, 3])
    loss = specrob.constraint_loss(spec, net, steps=2)(x, y)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert np.isfinite(net[0].weight.grad.numpy()).all()


def test_branch_and_bound_on_a_device_that_exists_or_a_clear_refusal(tmp_path):
    """--device cuda: on a machine without CUDA a UsageError that says so; with CUDA the same
    verdicts as on the CPU."""
    import torch
    model = export_mlp(tmp_path / "m.onnx")
    kwargs = dict(set=["eps=0.03"], progress=False)
    cpu = specrob.verify(model, SPEC, out=tmp_path / "cpu", **kwargs,
                         config=VerifyConfig(points=4, timeout=5, backend="bab"))
    if not torch.cuda.is_available():
        with pytest.raises(specrob.UsageError, match="no CUDA device"):
            specrob.verify(model, SPEC, out=tmp_path / "gpu", **kwargs,
                           config=VerifyConfig(points=4, timeout=5, backend="bab",
                                               device="cuda"))
        return
    gpu = specrob.verify(model, SPEC, out=tmp_path / "gpu", **kwargs,
                         config=VerifyConfig(points=4, timeout=5, backend="bab", device="cuda"))
    assert [r["verdict"] for r in gpu.rows] == [r["verdict"] for r in cpu.rows]


def test_wrong_api_arguments_are_specrob_errors(tmp_path):
    """What a notebook user gets wrong is a SpecrobError naming the argument (found by a
    new-user pass): a config of another kind, a non-integer count, an unknown logic, a
    negative step count, a model that is not a module."""
    from specrob.errors import OptionError
    spec = specrob.load(SPEC)
    with pytest.raises(specrob.UsageError, match="TrainConfig"):
        specrob.train(REPO / "examples" / "digits_mlp.py", spec, config=VerifyConfig(),
                      out=tmp_path / "t")
    for bad in (lambda: TrainConfig(epochs=2.5), lambda: VerifyConfig(timeout="abc"),
                lambda: EvalConfig(samples=0)):
        with pytest.raises(OptionError):
            bad()
    import torch
    net = torch.nn.Linear(64, 10)
    with pytest.raises(OptionError, match="dl3"):
        specrob.constraint_loss(spec, net, logic="dl3")
    with pytest.raises(OptionError, match="steps"):
        specrob.constraint_loss(spec, net, steps=-1)
    with pytest.raises(specrob.UsageError, match="torch.nn.Module"):
        specrob.constraint_loss(spec, None)


def test_a_model_that_raises_during_training_is_named_with_its_line(tmp_path):
    model = tmp_path / "later.py"
    model.write_text("import torch.nn as nn\n"
                     "class M(nn.Module):\n"
                     "    def __init__(self):\n"
                     "        super().__init__(); self.l = nn.Linear(64, 10); self.n = 0\n"
                     "    def forward(self, x):\n"
                     "        self.n += 1\n"
                     "        if self.n > 8:\n"
                     "            raise RuntimeError('boom')\n"
                     "        return self.l(x)\n"
                     "def build():\n"
                     "    return M()\n")
    with pytest.raises(specrob.SpecrobError, match="RuntimeError: boom"):
        specrob.train(model, SPEC, config=TrainConfig(epochs=1, steps=1), progress=False,
                      out=tmp_path / "t")
