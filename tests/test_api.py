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


def test_a_notebook_module_trains_in_place_under_one_property_of_a_spec(tmp_path):
    import torch
    from torch import nn

    from specrob.data import load_data
    data = load_data("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10)).eval()
    before = [p.detach().clone() for p in net.parameters()]
    spec = specrob.load(SPEC, eps=0.01)
    result = specrob.train(net, spec["CR"], data=data, export=False, progress=False,
                           config=TrainConfig(epochs=1, steps=2), out=tmp_path / "t")
    assert result.model is None and not (tmp_path / "t" / "model.onnx").exists()
    assert result.onnx_difference is None and not net.training  # the mode it came in
    assert result.property == "CR" and len(result.metrics) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))  # in place
    again = specrob.train(net, spec["CR"], data=data, export=False, progress=False,
                          config=TrainConfig(epochs=1, steps=2), out=tmp_path / "t")
    assert again.resumed_after == 1 and again.metrics == result.metrics  # reloaded, not retrained


def test_verify_given_centres_checks_exactly_those_points(tmp_path):
    from specrob.data import load_data
    model = export_mlp(tmp_path / "m.onnx")
    data = load_data("digits")
    x0, y = data.x_test[5:9], data.y_test[5:9]
    given = specrob.verify(model, SPEC, set=["eps=0.0"], progress=False, out=tmp_path / "v",
                           centres=(x0, y), data=data, config=VerifyConfig(timeout=5))
    # at eps = 0 the verdict is the model's own prediction at each centre (onnxruntime)
    import onnxruntime as ort
    session = ort.InferenceSession(str(model))
    logits = session.run(None, {session.get_inputs()[0].name: x0.astype(np.float32)})[0]
    expected = ["verified" if int(np.argmax(l)) == int(t) else "falsified"
                for l, t in zip(logits, y)]
    rows = sorted(given.rows, key=lambda r: r["index"])
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["label"] for r in rows] == [int(t) for t in y]
    assert [r["verdict"] for r in rows] == expected
    with pytest.raises(specrob.UsageError, match=r"x0 of shape \(N, 64\)"):
        specrob.verify(model, SPEC, progress=False, out=tmp_path / "w",
                       centres=(x0[:, :10], y), config=VerifyConfig(timeout=5))


@pytest.mark.parametrize("bad, message", [
    (lambda x, y: (x[:0], y[:0]), "no points"),
    (lambda x, y: (x, y + 0.5), "whole class labels"),
    (lambda x, y: (x, np.full_like(y, 10)), r"y\[0\] = 10 is not a class of the model"),
    (lambda x, y: (x, np.full_like(y, -1)), "is not a class of the model"),
    (lambda x, y: (x + 1.5, y), "outside the domain"),
    (lambda x, y: (np.where(x > 0.5, np.nan, x), y), "NaN or infinite"),
])
def test_bad_explicit_centres_are_specrob_errors_before_any_work(tmp_path, bad, message):
    from specrob.data import load_data
    model = export_mlp(tmp_path / "m.onnx")
    data = load_data("digits")
    x0, y = bad(data.x_test[:4].copy(), data.y_test[:4].copy())
    with pytest.raises(specrob.SpecrobError, match=message):
        specrob.verify(model, SPEC, progress=False, out=tmp_path / "v", centres=(x0, y),
                       data=data, config=VerifyConfig(timeout=5))


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


def test_reproduce_stays_callable_after_its_package_is_imported():
    """`specrob.reproduce` is both the public function and the package of the papers:
    importing the package (as a first call does) must not leave a module where the function
    was (found by a new-user pass: a second call raised "'module' object is not callable")."""
    import specrob.reproduce.common  # noqa: F401 - sets specrob.reproduce to the package
    for _ in range(2):
        with pytest.raises(specrob.UsageError, match="unknown paper"):
            specrob.reproduce("nonexistent")
