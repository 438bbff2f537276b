"""A run folder is bound to its run, has one writer and loses nothing to a crash
(`specrob.runfolder`, and the commands that write through it)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from specrob.cli import app
from specrob.runfolder import JsonLines, RunFolder, RunFolderError, read_json, write_json
from tests.conftest import REPO, export_mlp

CR = str(REPO / "specs" / "cr.rspec")


# --- the module --------------------------------------------------------------------------

def test_a_folder_of_the_same_run_resumes_and_of_another_run_is_refused_by_item(tmp_path):
    with RunFolder(tmp_path, "verify", {"model": {"sha256": "a"}, "seed": 0}, ["r.jsonl"]) as f:
        assert not f.resumed
    with RunFolder(tmp_path, "verify", {"model": {"sha256": "a"}, "seed": 0}, ["r.jsonl"]) as f:
        assert f.resumed
    with pytest.raises(RunFolderError, match=r"differing: model\.sha256, seed\).*--fresh"):
        RunFolder(tmp_path, "verify", {"model": {"sha256": "b"}, "seed": 1}, ["r.jsonl"]).open()
    with pytest.raises(RunFolderError, match="holds a 'verify' run, not a eval run"):
        RunFolder(tmp_path, "eval", {"model": {"sha256": "a"}, "seed": 0}, ["r.jsonl"]).open()


def test_fresh_deletes_only_the_files_of_its_kind(tmp_path):
    (tmp_path / "r.jsonl").write_text("{}\n")
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(RunFolderError, match="no run.json describes"):
        RunFolder(tmp_path, "verify", {"a": 1}, ["r.jsonl"]).open()
    with RunFolder(tmp_path, "verify", {"a": 1}, ["r.jsonl"], fresh=True) as f:
        assert not f.resumed
    assert not (tmp_path / "r.jsonl").exists() and (tmp_path / "mine.txt").read_text() == "keep"
    assert read_json(tmp_path / "run.json")["identity"] == {"a": 1}


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    with RunFolder(tmp_path, "verify", {"a": 1}, []):
        code = ("import sys; from specrob.runfolder import RunFolder; "
                "RunFolder(sys.argv[1], 'verify', {'a': 1}, []).open()")
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                                capture_output=True, text=True)
        assert result.returncode != 0
        assert f"in use by another specrob run (pid {os.getpid()})" in result.stderr
    RunFolder(tmp_path, "verify", {"a": 1}, []).open()  # released: free again


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    code = ("import sys, os, signal; from specrob.runfolder import RunFolder; "
            "RunFolder(sys.argv[1], 'verify', {'a': 1}, []).open(); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    with RunFolder(tmp_path, "verify", {"a": 1}, []) as f:
        assert f.resumed


def test_an_out_that_is_a_file_or_read_only_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        RunFolder(tmp_path / "file", "verify", {}, []).open()
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(RunFolderError, match="not writable"):
            RunFolder(ro, "verify", {}, []).open()


def test_a_cut_last_line_is_cut_off_and_the_next_row_starts_on_its_own_line(tmp_path):
    lines = JsonLines(tmp_path / "r.jsonl")
    for i in range(3):
        lines.append({"index": i})
    with open(lines.path, "a") as f:
        f.write('{"index": 3, "verd')  # a write cut by a full disk or a kill
    assert [r["index"] for r in lines.rows()] == [0, 1, 2]
    lines.append({"index": 3})
    assert [json.loads(x)["index"] for x in lines.path.read_text().splitlines()] == [0, 1, 2, 3]


def test_json_is_written_atomically_and_a_corrupt_file_is_named(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"a": 1})
    assert read_json(path) == {"a": 1} and [p.name for p in tmp_path.iterdir()] == ["s.json"]
    path.write_text('{"a": ')
    with pytest.raises(RunFolderError, match=r"s\.json: corrupt JSON .*--fresh"):
        read_json(path)


# --- the commands ------------------------------------------------------------------------

def digits_onnx(path, seed: int):
    return str(export_mlp(path, seed=seed))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return digits_onnx(folder / "a.onnx", 0), digits_onnx(folder / "b.onnx", 1)


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def verify_args(model, out, *extra):
    return ("verify", model, CR, "--set", "eps=0.02", "--points", "6", "--timeout", "5",
            "--quiet", "--out", out, *extra)


def test_verify_into_the_folder_of_another_model_is_refused_and_fresh_starts_over(tmp_path,
                                                                                  models):
    a, b = models
    out = tmp_path / "out"
    assert invoke(*verify_args(a, out)).exit_code == 0
    refused = invoke(*verify_args(b, out))
    assert refused.exit_code == 2 and "model.sha256" in refused.stderr
    assert "--fresh" in refused.stderr
    assert invoke(*verify_args(b, out, "--fresh")).exit_code == 0
    assert invoke(*verify_args(b, tmp_path / "alone")).exit_code == 0
    rows = lambda folder: sorted((r["index"], r["verdict"]) for r in  # noqa: E731
                                 JsonLines(folder / "results.jsonl").rows())
    assert rows(out) == rows(tmp_path / "alone")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == b and summary["points"] == 6


def test_verify_with_other_data_is_refused_not_merged(tmp_path, models):
    import numpy as np
    from specrob.data import load_data
    d = load_data("digits")
    np.savez(tmp_path / "mine.npz", x=d.x_test[::-1][:40], y=d.y_test[::-1][:40])
    out = tmp_path / "out"
    assert invoke(*verify_args(models[0], out)).exit_code == 0
    refused = invoke(*verify_args(models[0], out, "--data", tmp_path / "mine.npz"))
    assert refused.exit_code == 2 and "another point or label" in refused.stderr


def test_verify_resumes_after_a_cut_line_with_nothing_lost_or_doubled(tmp_path, models):
    out = tmp_path / "out"
    assert invoke(*verify_args(models[0], out)).exit_code == 0
    path = out / "results.jsonl"
    text = path.read_text()
    path.write_text(text[:-25])  # the last row cut in the middle
    assert invoke(*verify_args(models[0], out)).exit_code == 0
    indices = [json.loads(x)["index"] for x in path.read_text().splitlines()]
    assert sorted(indices) == list(range(6))
    assert json.loads((out / "summary.json").read_text())["points"] == 6


def test_eval_with_other_set_values_is_refused_naming_the_spec(tmp_path, models):
    out = tmp_path / "out"
    args = ("eval", models[0], CR, "--points", "5", "--samples", "5", "--steps", "2",
            "--quiet", "--out", out)
    assert invoke(*args, "--set", "eps=0.1").exit_code == 0
    refused = invoke(*args, "--set", "eps=0.5")
    assert refused.exit_code == 2 and "differing: spec" in refused.stderr
    again = invoke(*args, "--set", "eps=0.5", "--fresh")
    assert again.exit_code == 0
    eps = [p["eps"] for p in json.loads((out / "results.json").read_text())
           ["properties"]["CR"]["points"]]
    assert max(eps) == pytest.approx(0.5)


def test_a_killed_verify_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, models):
    """Fault injection: SIGKILL the process once some rows are written (and cut its last line,
    as a kill during a write would), rerun: every centre once, the same verdicts as a run that
    was never interrupted."""
    import signal
    import time as clock
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "specrob", "verify", models[1], CR, "--set", "eps=0.03",
            "--points", "40", "--timeout", "5", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    for _ in range(600):  # wait (at most a minute) for the first rows
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        if proc.poll() is not None:
            break
        clock.sleep(0.1)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    text = results.read_text()
    if text.endswith("\n") and len(text) > 30:
        results.write_text(text[:-20])  # and the last row cut in the middle
    rerun = subprocess.run(args, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    fresh = tmp_path / "fresh"
    subprocess.run([*args[:-1], str(fresh)], env=env, check=True, capture_output=True)
    rows = JsonLines(results).rows()
    assert sorted(r["index"] for r in rows) == list(range(40))  # nothing lost or doubled
    verdicts = lambda rs: {r["index"]: r["verdict"] for r in rs}  # noqa: E731
    assert verdicts(rows) == verdicts(JsonLines(fresh / "results.jsonl").rows())


def test_a_resumed_verify_keeps_what_earlier_runs_measured(tmp_path, models):
    out = tmp_path / "out"
    assert invoke(*verify_args(models[0], out)).exit_code == 0
    first = json.loads((out / "summary.json").read_text())
    assert invoke(*verify_args(models[0], out)).exit_code == 0  # nothing left to do
    again = json.loads((out / "summary.json").read_text())
    assert again["float32_error_max"] == first["float32_error_max"] > 0
    assert again["stage_seconds"]["attack"] >= first["stage_seconds"]["attack"] > 0
