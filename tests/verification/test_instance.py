"""VNN-COMP instances: per-coordinate boxes in bounds and Marabou, verify_instance, the CLI on
a fixed-batch (1, 784, 1) model with in-graph normalisation, result files, resume."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from specrob.cli import app
from specrob.network import load_onnx_checked
from specrob.network.oracle import Oracle
from specrob.lang import query as q
from specrob.verification.instance import read_result, result_text, verify_instance
from specrob.verification.marabou import solve_query
from specrob.verification.pipeline import bounds_stage
from specrob.verification.vnnlib_read import read_vnnlib

runner = CliRunner()


class Normalised(nn.Module):
    """(1, 784, 1) input, (x - mean) / std inside the graph (Sub/Div), Flatten, an MLP."""

    def __init__(self, n: int = 784, hidden: int = 24, m: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n, hidden), nn.ReLU(), nn.Linear(hidden, m))

    def forward(self, x):
        return self.body(torch.flatten((x - 0.1307) / 0.3081, 1))


def export_fixed(model: nn.Module, shape: tuple[int, ...], path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, *shape), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"])


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """A model file with a fixed batch of 1, input (1, 784, 1), and a centre with its label."""
    folder = tmp_path_factory.mktemp("instance")
    torch.manual_seed(0)
    model = Normalised().eval()
    path = folder / "net.onnx"
    export_fixed(model, (784, 1), path)
    x0 = np.random.default_rng(0).random(784).astype(np.float32).astype(np.float64)
    label = int(np.argmax(Oracle(path)(x0[None])[0]))
    return folder, path, x0, label


def robustness_vnnlib(x0: np.ndarray, label: int, eps: float, m: int = 10) -> str:
    """A property as the VNN-COMP mnistfc generator writes it."""
    lines = [f"; label: {label}"]
    lines += [f"(declare-const X_{i} Real)" for i in range(len(x0))]
    lines += [f"(declare-const Y_{j} Real)" for j in range(m)]
    for i, v in enumerate(x0):
        lines.append(f"(assert (<= X_{i} {float(min(1.0, v + eps))!r}))")
        lines.append(f"(assert (>= X_{i} {float(max(0.0, v - eps))!r}))")
    lines.append("(assert (or\n" + "\n".join(f"    (and (>= Y_{j} Y_{label}))"
                                             for j in range(m) if j != label) + "\n))")
    return "\n".join(lines) + "\n"


def test_bounds_and_marabou_agree_on_a_box_as_arrays_and_as_a_ball(tmp_path):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    path = tmp_path / "small.onnx"
    export_fixed(model, (4,), path)
    net, _ = load_onnx_checked(path)
    x0 = np.array([0.3, 0.9, 0.02, 0.5])
    label = int(np.argmax(Oracle(path)(x0[None])[0]))
    body = q.And(tuple(q.Atom(q.Affine(np.eye(3)[[label]] - np.eye(3)[[j]], np.zeros((1, 4)),
                                       np.zeros(1)), (), ">") for j in range(3) if j != label))
    answers = []
    for eps in (0.005, 0.05, 0.5, 5.0):
        ball = q.InputRegion(x0, eps, math.inf, -4.0, 4.0)
        box = q.InputRegion.box(np.maximum(x0 - eps, -4.0), np.minimum(x0 + eps, 4.0))
        assert np.allclose(box.box_low, ball.box_low) and np.allclose(box.box_high, ball.box_high)
        queries = [q.Query(body, ball, 3), q.Query(body, box, 3)]
        by_bounds = bounds_stage(net, queries, "crown", 1e-6)
        by_marabou = [solve_query(net, query, timeout=10).status for query in queries]
        assert by_bounds[0] == by_bounds[1] and by_marabou[0] == by_marabou[1]
        assert by_marabou[0] in ("sat", "unsat")
        answers.append(by_marabou[0])
        if by_bounds[0]:
            assert by_marabou[0] == "unsat"
    assert answers[0] == "unsat" and "sat" in answers  # both answers were exercised


def test_verify_instance_and_its_result_file(mnist_like, tmp_path):
    folder, path, x0, label = mnist_like
    net, module = load_onnx_checked(path)
    small, large = tmp_path / "small.vnnlib", tmp_path / "large.vnnlib"
    small.write_text(robustness_vnnlib(x0, label, 1e-3))
    large.write_text(robustness_vnnlib(x0, label, 0.5))
    result = verify_instance(path, net, module, read_vnnlib(small), timeout=10)
    assert result.status == "unsat"
    (query,) = read_vnnlib(large)
    result = verify_instance(path, net, module, [query], timeout=10)
    assert result.status == "sat" and result.x.shape == (784,) and result.y.shape == (10,)
    # the written counterexample re-evaluates to a violation on onnxruntime
    out = tmp_path / "result.txt"
    out.write_text(result_text(result))
    status, x, y = read_result(out)
    assert status == "sat"
    assert np.all((x >= query.region.box_low) & (x <= query.region.box_high))
    assert np.array_equal(x.astype(np.float32).astype(np.float64), x)
    fx = Oracle(path)(x[None])[0]
    assert np.allclose(fx, y, atol=1e-6)
    assert np.argmax(fx) != label or any(fx[j] >= fx[label] for j in range(10) if j != label)
    assert not q.holds(query.body, fx, x)


def cli(*args: str):
    return runner.invoke(app, ["verify", *args, "--quiet"])


def test_cli_on_a_fixed_batch_model_with_normalisation(mnist_like, tmp_path):
    folder, path, x0, label = mnist_like
    for eps, expected in ((1e-3, "unsat"), (0.5, "sat")):
        prop = tmp_path / f"prop_{eps}.vnnlib"
        prop.write_text(robustness_vnnlib(x0, label, eps))
        out = tmp_path / f"out_{eps}"
        result = cli(str(path), str(prop), "--timeout", "10", "--out", str(out))
        assert result.exit_code == 0, result.output
        assert f"net_prop_{eps}: {expected}" in result.output
        assert (out / f"net_prop_{eps}.txt").read_text().split("\n")[0] == expected
        (row,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert row["status"] == expected
    # malformed property: exit 2, a located message, no traceback
    bad = tmp_path / "bad.vnnlib"
    bad.write_text("(declare-const X_0 Real)\n(assert (<= X_0 1.0)\n")
    result = cli(str(path), str(bad), "--out", str(tmp_path / "bad"))
    assert result.exit_code == 2 and f"{bad}:2:1" in result.output.replace("\n", "")
    assert "Traceback" not in result.output


def test_instances_csv_writes_result_files_and_resumes(mnist_like, tmp_path):
    folder, path, x0, label = mnist_like
    import gzip
    (folder / "small.vnnlib").write_text(robustness_vnnlib(x0, label, 1e-3))
    (folder / "large.vnnlib.gz").write_bytes(
        gzip.compress(robustness_vnnlib(x0, label, 0.5).encode()))
    csv = folder / "instances.csv"
    csv.write_text("net.onnx,small.vnnlib,10\nnet.onnx,large.vnnlib.gz,10\n")
    out = tmp_path / "run"
    result = cli("--instances", str(csv), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "net_small.txt").read_text() == "unsat\n"
    assert (out / "net_large.txt").read_text().startswith("sat\n((X_0 ")
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["unsat"], summary["sat"], summary["finished"]) == (1, 1, 2)
    rows = (out / "results.jsonl").read_text().splitlines()
    # resume: a finished instance is not run again
    (out / "net_large.txt").unlink()
    before = (out / "net_small.txt").stat().st_mtime_ns
    result = cli("--instances", str(csv), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "net_small.txt").stat().st_mtime_ns == before
    assert (out / "net_large.txt").exists()
    again = (out / "results.jsonl").read_text().splitlines()
    assert again[:2] == rows and len(again) == 3  # only the instance without its file ran
    # another CSV in the same folder is refused; --fresh starts over
    csv.write_text("net.onnx,small.vnnlib,5\n")
    result = cli("--instances", str(csv), "--out", str(out))
    assert result.exit_code == 2 and "--fresh" in result.output
    result = cli("--instances", str(csv), "--out", str(out), "--fresh")
    assert result.exit_code == 0, result.output
    assert not (out / "net_large.txt").exists()
    assert len((out / "results.jsonl").read_text().splitlines()) == 1


def test_instances_csv_errors_are_located(tmp_path):
    csv = tmp_path / "instances.csv"
    csv.write_text("net.onnx,prop.vnnlib\n")
    result = cli("--instances", str(csv), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and f"{csv}:1: expected 3 columns" in \
        result.output.replace("\n", "")


def test_rows_with_the_same_file_names_in_other_folders_are_separate_instances(tmp_path):
    """Two rows whose files share names (other folders) must each be run and reported: one
    is sat, one unsat (they used to share one result, a wrong verdict for the second)."""
    import shutil
    from tests.conftest import SHARED
    bench = SHARED / "benchmarks" / "vnncomp2021-mnistfc"
    (tmp_path / "d").mkdir()
    shutil.copy(bench / "mnist-net_256x2.onnx", tmp_path)
    shutil.copy(bench / "mnist-net_256x2.onnx", tmp_path / "d")
    shutil.copy(bench / "prop_2_0.03.vnnlib.gz", tmp_path)  # unsat (CROWN)
    shutil.copy(bench / "prop_7_0.03.vnnlib.gz", tmp_path / "d" / "prop_2_0.03.vnnlib.gz")  # sat
    csv = tmp_path / "i.csv"
    csv.write_text("mnist-net_256x2.onnx,prop_2_0.03.vnnlib.gz,20\n"
                   "d/mnist-net_256x2.onnx,d/prop_2_0.03.vnnlib.gz,20\n")
    result = CliRunner().invoke(app, ["verify", "--instances", str(csv), "--out",
                                      str(tmp_path / "o"), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (tmp_path / "o" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["sat", "unsat"]
    assert len(list((tmp_path / "o").glob("*_row*.txt"))) == 2


def test_a_csv_that_is_not_text_is_a_located_error(tmp_path):
    csv = tmp_path / "i.csv"
    csv.write_bytes(b"a.onnx,b.vnnlib,10\n\xff\n")
    result = CliRunner().invoke(app, ["verify", "--instances", str(csv), "--out",
                                      str(tmp_path / "o")])
    assert result.exit_code == 2 and "i.csv:2: invalid UTF-8 byte 0xff" in result.output
