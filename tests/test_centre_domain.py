"""Centres outside a declaration's domain (issue 18 item 7): refused before any work, in every
command that uses centres, with their indices in the data and the domain; exit 2, no
traceback."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from specrob.cli import app
from specrob.data import load_data
from specrob.estimate.evaluation import CentreError, domain_of, select_centres
from specrob.lang import ir

runner = CliRunner()

SPEC = """property CRdom(eps: nonneg[input] = 0.05):
    centres: test
    domain: box(0.2, 0.8)
    forall x in ball(x0, eps, inf):
        argmax(f(x)) == y
"""


@pytest.fixture
def case(tmp_path):
    """A 2-input, 3-class network, a spec with domain box(0.2, 0.8), test centres 1 and 3
    outside it (and a training set inside)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    torch.onnx.export(net, (torch.rand(1, 2),), str(tmp_path / "net.onnx"), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}},
                      dynamo=False)
    x_test = np.array([[0.5, 0.5], [0.9, 0.5], [0.3, 0.7], [0.5, 0.0]], np.float32)
    np.savez(tmp_path / "data.npz", x=np.array([[0.5, 0.5], [0.4, 0.4]], np.float32),
             y=np.array([2, 0]), x_test=x_test, y_test=np.array([0, 1, 2, 0]))
    (tmp_path / "dom.rspec").write_text(SPEC)
    return tmp_path


def assert_refused(result, *, indices: str) -> None:
    text = result.output + (result.stderr or "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), text
    assert "outside the domain box(0.2, 0.8)" in text, text
    assert f"centres {indices}" in text, text
    assert "widen `domain:`" in text, text


@pytest.mark.parametrize("command", [
    ["verify", "--backend", "auto"], ["verify", "--backend", "bounds"],
    ["verify", "--backend", "marabou"], ["eval", "--eps", "0,0.05"], ["export"]])
def test_every_command_refuses_centres_outside_the_domain(case, command):
    out = case / "out"
    result = runner.invoke(app, [command[0], str(case / "net.onnx"), str(case / "dom.rspec"),
                                 "--data", str(case / "data.npz"), "--out", str(out),
                                 *command[1:]])
    assert_refused(result, indices="1, 3")
    assert not (out / "results.jsonl").exists() and not (out / "results.json").exists()
    assert not list(out.glob("*.vnnlib"))


def test_centres_inside_the_domain_still_run(case):
    """--points 1 uses centre 0 only, which is inside: nothing to refuse."""
    result = runner.invoke(app, ["export", str(case / "net.onnx"), str(case / "dom.rspec"),
                                 "--data", str(case / "data.npz"), "--points", "1",
                                 "--out", str(case / "out")])
    assert result.exit_code == 0, result.output


def test_indices_are_those_of_the_data_after_filtering(case):
    """`where correct` drops centres; the message still names their index in the data."""
    data = load_data(str(case / "data.npz"))
    model = lambda x: torch.nn.functional.one_hot(torch.tensor([1, 1, 2, 2]), 3).float()  # noqa
    centres = ir.Centres("test", correct_only=True)  # keeps test points 1 and 2
    with pytest.raises(CentreError) as error:
        select_centres(centres, data, model, None, domain=(0.2, 0.8), what="property P")
    assert "1 of 2 centres" in str(error.value) and "centre 1 " in str(error.value)
    x, _, _ = select_centres(centres, data, model, None, domain=(0.0, 1.0))
    assert len(x) == 2


def test_the_check_is_exact_in_float64(tmp_path):
    """float32(0.8) = 0.800000012 lies outside box(0.2, 0.8): its ball ∩ domain at eps 0 is
    empty, as bounds and Marabou (float64) see it; the message shows enough digits."""
    np.savez(tmp_path / "d.npz", x=np.full((2, 2), 0.5, np.float32), y=np.array([0, 1]),
             x_test=np.array([[0.5, 0.5], [0.8, 0.5]], np.float32), y_test=np.array([0, 1]))
    data = load_data(str(tmp_path / "d.npz"))
    with pytest.raises(CentreError, match=r"centre 1 has x\[0\] = 0\.800000012"):
        select_centres(ir.Centres("test"), data, None, None, domain=(0.2, 0.8))
    x, _, _ = select_centres(ir.Centres("test"), data, None, None, domain=(0.2, 0.8000001))
    assert len(x) == 2
    import specrob
    assert domain_of(specrob.loads(SPEC)["CRdom"], 2) == (0.2, 0.8)
