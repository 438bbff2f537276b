"""Every number a user gives is checked where it is read: CLI options, --set values, spec
radii and models whose outputs are not finite end in one clear error (exit 2), never a
traceback or silent nonsense (shared cases reliability/*)."""
from __future__ import annotations


import pytest
from typer.testing import CliRunner

from specrob.cli import app
from tests.conftest import REPO, export_mlp

CR = str(REPO / "specs" / "cr.rspec")
MLP = str(REPO / "examples" / "digits_mlp.py")


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_mlp(tmp_path_factory.mktemp("m") / "m.onnx", hidden=8)


@pytest.mark.parametrize("value, says", [("1e400", "overflows to infinity"),
                                         ("nan", "not a usable number"),
                                         ("-1", "must not be negative")])
def test_set_values_are_finite_numbers_in_range(value, says):
    assert says in invoke("check", CR, "--set", f"eps={value}")


def test_a_radius_that_evaluates_negative_is_an_error_at_check_time(tmp_path):
    spec = tmp_path / "s.rspec"
    spec.write_text("property P(eps = 0.1):\n    forall x in ball(x0, eps - 0.2, inf):\n"
                    "        argmax(f(x)) == y\n")
    out = invoke("check", spec)
    assert f"{spec}:2:26: error: the ball's radius must not be negative (got -0.1)" in out


def test_a_negative_infinite_norm_is_named_as_such():
    assert "unknown norm -inf" in invoke("check", CR, "--set", "p=-inf")


@pytest.mark.parametrize("args, says", [
    (("--points", "0"), "--points"), (("--points", "-1"), "--points"),
    (("--samples", "0"), "--samples"), (("--restarts", "0"), "--restarts"),
    (("--eps", "nan"), "--eps"), (("--set", "eps=inf"), "--eps 0,0.05,0.1")])
def test_eval_options_out_of_range(model, tmp_path, args, says):
    assert says in invoke("eval", model, CR, "--quiet", "--out", tmp_path / "o", *args)


@pytest.mark.parametrize("args", [("--lr", "nan"), ("--lr", "-1"), ("--epochs", "0"),
                                  ("--batch-size", "0"), ("--b", "inf"), ("--steps", "-1")])
def test_train_options_out_of_range(tmp_path, args):
    out = invoke("train", MLP, CR, "--quiet", "--out", tmp_path / "o", *args)
    assert args[0] in out
    assert not (tmp_path / "o").exists()  # refused before any work


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "1e308", "5e9"])
def test_verify_timeout_out_of_range(model, tmp_path, timeout):
    assert "--timeout" in invoke("verify", model, CR, "--timeout", timeout, "--quiet",
                                 "--out", tmp_path / "o")


def test_a_model_whose_outputs_are_not_finite_is_refused(tmp_path):
    path = export_mlp(tmp_path / "huge.onnx", hidden=8, scale=1e30)
    for command in ("verify", "eval"):
        out = invoke(command, path, CR, "--points", "3", "--quiet", "--out", tmp_path / command)
        assert "not finite" in out


def test_rspec_options_are_refused_for_vnnlib_and_binary_files_are_named(tmp_path):
    """Options that only mean something for .rspec properties are refused for a VNN-LIB
    instance (not silently ignored), and a VNN-LIB or ONNX file given where a spec goes is
    named as what it is."""
    from typer.testing import CliRunner

    from specrob.cli import app
    from tests.conftest import SHARED
    bench = SHARED / "benchmarks" / "vnncomp2021-mnistfc"
    net, prop = bench / "mnist-net_256x2.onnx", bench / "prop_7_0.03.vnnlib.gz"
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(net), str(prop), "--set", "eps=0.1",
                                 "--points", "3", "--out", str(tmp_path / "v")])
    assert result.exit_code == 2 and "--set, --points" in result.output
    result = runner.invoke(app, ["check", str(prop)])
    assert result.exit_code == 2 and "is a VNN-LIB property" in result.output
    result = runner.invoke(app, ["verify", str(REPO / "specs" / "cr.rspec"), str(net)])
    assert result.exit_code == 2 and "is an ONNX model, not an .rspec spec" in result.output
