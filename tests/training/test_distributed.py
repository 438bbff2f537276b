"""Data-parallel training under torchrun (two gloo processes on the CPU): the loss curve of one
process with the same global batch, resume from rank 0's checkpoint, refusals."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

MODEL = REPO / "examples" / "digits_mlp.py"
SPEC = REPO / "specs" / "cr.rspec"


def _train(out, epochs: int, *, processes: int = 1, regime: str = "baseline", batch: int = 64):
    command = [sys.executable, "-m", "specrob", "train", str(MODEL), str(SPEC), "--regime",
               regime, "--epochs", str(epochs), "--out", str(out), "--quiet", "--batch-size",
               str(batch)]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node", str(processes), *command[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300,
                          cwd=REPO)


def _curve(out):
    return json.loads((out / "metrics.json").read_text())


def test_two_processes_follow_the_loss_curve_of_one(tmp_path):
    one = _train(tmp_path / "one", 3)
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path / "two", 2, processes=2)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("epoch 2: CE") == 1  # rank 0 reports; the other is silent
    # resumed from rank 0's checkpoint, on both processes, for a third epoch
    more = _train(tmp_path / "two", 3, processes=2)
    assert more.returncode == 0, more.stderr
    a, b = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for r, s in zip(a, b):
        assert s["ce"] == pytest.approx(r["ce"], abs=1e-6)  # the mean over the global batch
        assert s["test_accuracy"] == r["test_accuracy"]
        assert s["test_ce"] == pytest.approx(r["test_ce"], abs=1e-6)
    assert (tmp_path / "two" / "model.onnx").exists()


def test_uneven_shares_and_an_empty_one_are_weighed_as_one_global_batch(tmp_path):
    # 1 438 digits rows in batches of 479: shares of 240 and 239, and a last batch of one row
    # that leaves one process without rows
    one = _train(tmp_path / "one", 2, batch=479)
    two = _train(tmp_path / "two", 2, processes=2, batch=479)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    for r, s in zip(_curve(tmp_path / "one"), _curve(tmp_path / "two")):
        assert s["ce"] == pytest.approx(r["ce"], abs=1e-6)
        assert s["test_accuracy"] == r["test_accuracy"]


def test_cotrain_under_torchrun_is_refused_with_the_reason(tmp_path):
    run = _train(tmp_path / "co", 1, processes=2, regime="cotrain")
    assert run.returncode != 0
    assert "error: --regime cotrain under torchrun" in run.stderr
    # specrob's processes exit with the message (exit 2); the only traceback is torchrun's own
    # report of a failed child, whose frames are torch's
    frames = [line for line in run.stderr.splitlines() if line.strip().startswith('File "')]
    assert not any("specrob" in line.split("site-packages")[-1] and "torch" not in line
                   for line in frames), frames
    assert "exitcode  : 2" in run.stderr
