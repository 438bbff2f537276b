"""`specrob check`: normal forms on stdout, JSON with --json, located errors and exit code 2."""
from __future__ import annotations

import json

import pytest
import shutil
import subprocess

from typer.testing import CliRunner

from specrob.cli import app
from tests.conftest import REPO, SPECS

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_check_prints_every_standard_declaration():
    result = run("check", *map(str, SPECS))
    assert result.exit_code == 0, result.output
    for name in ("property CR", "property SR", "property LR", "property SCR",
                 "property LocalLipschitz", "score margin_area", "score gaussian_consistency",
                 "score on_manifold_average"):
        assert name in result.output
    assert "normal form  forall j != y: f(x)[y] - f(x)[j] > 0" in result.output


def test_check_json_is_scriptable():
    result = run("check", str(REPO / "specs" / "cr.rspec"), "--set", "eps=0.05", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    (cr,) = data["declarations"]
    assert cr["name"] == "CR" and cr["piecewise_linear"] is True
    assert {p["name"]: p["value"] for p in cr["params"]}["eps"] == 0.05
    assert cr["backends"]["marabou"]["level"] == "exact"


def test_malformed_spec_exits_2_with_one_located_message(tmp_path):
    bad = tmp_path / "bad.rspec"
    bad.write_text("property R(eps = 0.1):\n    forall x in ball(x0, eps): f(x)[y] >> 0\n")
    result = run("check", str(bad))
    assert result.exit_code == 2
    assert f"{bad}:2:41: error: unexpected '>'" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_bad_set_exits_2():
    result = run("check", str(REPO / "specs" / "scr.rspec"), "--set", "eta=1.5")
    assert result.exit_code == 2
    assert "--set:1:5: error" in result.stderr and "between 0 and 1" in result.stderr


def test_good_files_are_still_reported_next_to_a_bad_one(tmp_path):
    bad = tmp_path / "bad.rspec"
    bad.write_text("")
    result = run("check", str(REPO / "specs" / "cr.rspec"), str(bad))
    assert result.exit_code == 2
    assert "property CR" in result.stdout and "declares nothing" in result.stderr


def test_the_example_in_the_help_runs(monkeypatch):
    """`check --help` ends with an example; run as written (from the repository), it works."""
    import re
    import shlex
    monkeypatch.chdir(REPO)
    result = run("check", "--help")
    assert result.exit_code == 0
    example = re.search(r"Example:\s+specrob (check [^\n│]+)", result.output)
    assert example, result.output
    done = run(*shlex.split(example.group(1).strip()))
    assert done.exit_code == 0, done.output
    assert "property CR" in done.output and "eps = 0.05" in done.output


def test_installed_command_finds_its_grammar_outside_the_repository(tmp_path):
    """The console script of a normal `pip install .` carries grammar and specs inside."""
    exe = shutil.which("specrob")
    assert exe, "install specrob first (README: pip install '.[test]')"
    spec = tmp_path / "mine.rspec"
    spec.write_text("property robust = CR(eps = 0.05, p = 2)\n")
    done = subprocess.run([exe, "check", str(spec)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "property robust" in done.stdout
    missing = subprocess.run([exe, "check", "absent.rspec"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


MLP = str(REPO / "examples" / "digits_mlp.py")
CR = str(REPO / "specs" / "cr.rspec")


def test_train_writes_checkpoint_metrics_and_a_checked_onnx_model(tmp_path):
    out = tmp_path / "run"
    result = run("train", MLP, CR, "--epochs", "1", "--steps", "3", "--out", str(out),
                 "--quiet", "--set", "eps=0.05")
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", "metrics.json", "model.onnx"}
    assert "onnxruntime matches torch" in result.stdout
    again = run("train", MLP, CR, "--epochs", "2", "--steps", "3", "--out", str(out),
                "--quiet", "--set", "eps=0.05")
    assert again.exit_code == 0 and "resuming" in again.stdout
    assert len(json.loads((out / "metrics.json").read_text())) == 2


def test_train_reports_bad_inputs_without_a_traceback(tmp_path):
    wrong = tmp_path / "wrong.py"
    wrong.write_text("import torch.nn as nn\ndef build():\n    return nn.Linear(64, 3)\n")
    cases = [
        ((str(tmp_path / "absent.py"), CR), "no such model file"),
        ((str(wrong), CR), "expected (2, 10) logits"),
        ((MLP, CR, "--property", "CRR"), "did you mean 'CR'"),
        ((MLP, CR, "--data", str(tmp_path / "absent.npz")), "absent.npz"),
        ((MLP, CR, "--regime", "magic"), "unknown regime"),
        ((MLP, str(REPO / "specs" / "margin.rspec")), "no property"),
        ((MLP, CR, "--set", "eps=-1"), "must not be negative"),
    ]
    for args, message in cases:
        result = run("train", *args, "--out", str(tmp_path / "o"), "--quiet")
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits MLP trained for 2 epochs under CR (its run folder)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    result = run("train", MLP, CR, "--epochs", "2", "--steps", "3", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_eval_writes_results_json_and_plots(trained, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", str(trained / "model.onnx"), CR, "--points", "60", "--samples", "10",
            "--steps", "5", "--eps", "0,0.05,0.1", "--out", str(out), "--quiet"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "results.json").read_text())
    points = data["properties"]["CR"]["points"]
    assert [p["eps"] for p in points] == [0.0, 0.05, 0.1]
    for p in points:
        for metric in ("security", "accuracy"):
            e = p[metric]
            assert e["low"] <= e["value"] <= e["high"] and e["count"] == 60
    assert (out / "security.png").stat().st_size > 1000
    again = run(*args)  # finished declarations are reused
    assert again.exit_code == 0
    assert json.loads((out / "results.json").read_text())["properties"] == data["properties"]


def test_eval_of_a_model_file_needs_its_weights(trained, tmp_path):
    bare = run("eval", MLP, CR, "--out", str(tmp_path), "--quiet")
    assert bare.exit_code == 2 and "--checkpoint" in bare.stderr
    with_weights = run("eval", MLP, CR, "--checkpoint", str(trained), "--points", "20",
                       "--samples", "5", "--eps", "0.1", "--out", str(tmp_path), "--quiet")
    assert with_weights.exit_code == 0, with_weights.output


def test_eval_reports_bad_inputs(tmp_path):
    bad_eps = run("eval", MLP, CR, "--eps", "0,x", "--out", str(tmp_path))
    assert bad_eps.exit_code == 2 and "--eps takes numbers" in bad_eps.stderr
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("not a model")
    result = run("eval", str(not_onnx), CR, "--out", str(tmp_path))
    assert result.exit_code == 2 and "model.onnx" in result.stderr
    assert "Traceback" not in result.stderr
