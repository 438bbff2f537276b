"""--device cpu | cuda | cuda:N | auto on train, eval, verify and reproduce.

On a machine without CUDA the device path is checked by an oracle: `explicit_devices()`
(tests/conftest.py) fails any tensor specrob creates without saying where it lives, which on
a GPU would land on the CPU beside CUDA data. The reproductions' smoke tests run under the
same oracle (tests/reproduce). Tests that need a GPU skip here and say so."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import specrob
from specrob.cli import app
from specrob.devices import DeviceError, resolve_device
from tests.conftest import REPO, explicit_devices, export_mlp

CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine: the device "
                                                 "path is checked by explicit_devices() instead")
SPECS = REPO / "specs"


# --- resolving --device ----------------------------------------------------------------------
def test_cpu_is_cpu_and_auto_is_the_gpu_when_there_is_one():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == (f"cuda:{torch.cuda.current_device()}" if CUDA else "cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "CUDA", "", "cuda:-1"])
def test_an_unknown_device_names_the_choices(bad):
    with pytest.raises(DeviceError, match="choose cpu, cuda, cuda:N or auto"):
        resolve_device(bad)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    for device in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError, match="no CUDA device here.*--device cpu"):
            resolve_device(device)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["train", "eval", "verify", "reproduce"])
def test_every_command_refuses_a_device_it_does_not_have(tmp_path, command):
    """Before any work: exit status 2, the reason and the fix, no traceback, no run folder."""
    model = export_mlp(tmp_path / "m.onnx")
    out = tmp_path / "out"
    args = {"train": ["train", str(REPO / "examples" / "digits_mlp.py"), str(SPECS / "cr.rspec"),
                      "--epochs", "1", "--out", str(out)],
            "eval": ["eval", str(model), str(SPECS / "cr.rspec"), "--points", "2",
                     "--out", str(out)],
            "verify": ["verify", str(model), str(SPECS / "cr.rspec"), "--points", "2",
                       "--out", str(out)],
            "reproduce": ["reproduce", "lassance", "--smoke", "--work", str(out),
                          "--out", str(tmp_path / "pages")]}[command]
    result = CliRunner().invoke(app, [*args, "--device", "cuda", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "no CUDA device here" in result.output and "--device cpu" in result.output
    assert "Traceback" not in result.output
    assert not (out / "results.json").exists() and not (out / "results.jsonl").exists()


def test_a_cluster_computes_on_cpus():
    with pytest.raises(specrob.OptionError, match="--shard i/N per device"):
        specrob.EvalConfig(device="cuda", cluster="local:2")
    with pytest.raises(specrob.OptionError, match="--shard i/N per device"):
        specrob.VerifyConfig(device="cuda:1", cluster="local:2")
    assert specrob.EvalConfig(device="auto", cluster="local:2").device == "auto"


# --- the oracle: every tensor where the data is ------------------------------------------------
@pytest.mark.parametrize("spec, sets", [
    ("cr", []), ("cr", ["p=2"]), ("cr", ["p=1"]), ("sr", []), ("lr", []), ("scr", ["p=2"]),
    ("lipschitz", []), ("margin", []), ("gaussian", [])])
def test_an_evaluation_creates_every_tensor_on_its_device(tmp_path, spec, sets):
    """Attacks, uniform samplers (l_inf boxes, l_1 / l_2 rejection), scores, margins,
    alpha_lim(r), incompatibility and noise curves."""
    model = export_mlp(tmp_path / "m.onnx")
    config = specrob.EvalConfig(points=6, samples=8, steps=3, restarts=1, grid=3)
    with explicit_devices():
        result = specrob.evaluate(model, SPECS / f"{spec}.rspec", config=config, set=sets,
                                  out=tmp_path / "eval")
    assert result.results["properties"] or result.results["scores"]


@pytest.mark.parametrize("backend, eps", [("auto", 0.05), ("bab", 0.08)])
def test_a_verification_creates_every_tensor_on_its_device(tmp_path, backend, eps):
    """Margin attack, PGD, CROWN, branch and bound; the checks of counterexamples stay on the
    CPU by saying so."""
    model = export_mlp(tmp_path / "m.onnx")
    with explicit_devices():
        result = specrob.verify(model, SPECS / "cr.rspec", set=[f"eps={eps}"], progress=False,
                                out=tmp_path / "v", config=specrob.VerifyConfig(
                                    points=6, timeout=5, backend=backend))
    methods = {r["method"] for r in result.rows}
    assert "attack" in methods and methods & {"crown", "bab"}


@pytest.mark.parametrize("regime, options", [
    ("constraint", {}), ("constraint", {"logic": "goedel"}), ("adversarial", {}),
    ("augmentation", {}), ("augmentation", {"augment": "fgsm"}), ("cotrain", {}),
    ("baseline", {})])
def test_training_creates_every_tensor_on_its_device(tmp_path, regime, options):
    from torch import nn

    from specrob.data import load_data
    from specrob.reproduce.common import shrink
    data = shrink(load_data("digits"), 128, 64)
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    config = specrob.TrainConfig(regime=regime, epochs=1, eval_points=16, **options)
    with explicit_devices():
        specrob.train(net, SPECS / "cr.rspec", data=data, config=config, export=False,
                      out=tmp_path / "t", progress=False)


def test_the_oracle_catches_a_tensor_left_on_the_default_device():
    """explicit_devices() can fail: specrob code that forgets `device=` is reported."""
    from specrob.search.region import Region
    with explicit_devices():
        Region(0.1, 2.0, 0.0, 1.0).random(torch.zeros(3, 4))  # draws with device=: fine
        inside = str(Path(specrob.__file__).resolve().parent / "fake.py")  # as if in the package
        with pytest.raises(AssertionError, match="zeros without device="):
            exec(compile("import torch\ntorch.zeros(3)", inside, "exec"))
        torch.zeros(3)  # this test file is not the package: not reported


# --- auto: the device used is the run's identity -------------------------------------------------
def test_auto_on_a_cpu_machine_is_the_cpu_run(tmp_path):
    """--device auto resolves before the run folder is bound: on this machine the folder of
    a cpu run is resumed by an auto run (same key), and the results are the same."""
    if CUDA:
        pytest.skip("auto is a CUDA run on this machine")
    model = export_mlp(tmp_path / "m.onnx")
    config = dict(points=6, samples=8, steps=3, restarts=1)
    cpu = specrob.evaluate(model, SPECS / "cr.rspec", out=tmp_path / "a",
                           config=specrob.EvalConfig(**config, device="cpu"))
    auto = specrob.evaluate(model, SPECS / "cr.rspec", out=tmp_path / "a",
                            config=specrob.EvalConfig(**config, device="auto"))
    assert auto.results == cpu.results
    assert "device" not in json.loads((tmp_path / "a" / "results.json").read_text())["config"]


# --- on a GPU -----------------------------------------------------------------------------------
@NEEDS_CUDA
def test_verdicts_on_cuda_are_the_cpu_verdicts(tmp_path):
    model = export_mlp(tmp_path / "m.onnx")
    kwargs = dict(set=["eps=0.05"], progress=False)
    rows = {}
    for device in ("cpu", "cuda"):
        rows[device] = specrob.verify(model, SPECS / "cr.rspec", out=tmp_path / device, **kwargs,
                                      config=specrob.VerifyConfig(points=16, timeout=10,
                                                                  device=device)).rows
    assert [r["verdict"] for r in rows["cuda"]] == [r["verdict"] for r in rows["cpu"]]


@NEEDS_CUDA
def test_branch_and_bound_on_cuda_decides_as_on_the_cpu(tmp_path):
    model = export_mlp(tmp_path / "m.onnx")
    rows = {d: specrob.verify(model, SPECS / "cr.rspec", out=tmp_path / d, set=["eps=0.03"],
                              progress=False, config=specrob.VerifyConfig(
                                  points=4, timeout=5, backend="bab", device=d)).rows
            for d in ("cpu", "cuda")}
    assert [r["verdict"] for r in rows["cuda"]] == [r["verdict"] for r in rows["cpu"]]


@NEEDS_CUDA
def test_an_evaluation_on_cuda_estimates_what_the_cpu_estimates(tmp_path):
    """Random draws follow another stream on the GPU: security within a few centres, the
    accuracy intervals overlapping; the run's identity names the device."""
    model = export_mlp(tmp_path / "m.onnx")
    config = dict(points=64, samples=32, steps=10)
    got = {d: specrob.evaluate(model, SPECS / "cr.rspec", out=tmp_path / d,
                               config=specrob.EvalConfig(**config, device=d)).results
           for d in ("cpu", "cuda")}
    for a, b in zip(got["cpu"]["properties"]["CR"]["points"],
                    got["cuda"]["properties"]["CR"]["points"]):
        assert abs(a["security"]["value"] - b["security"]["value"]) <= 4 / 64
        assert a["accuracy"]["low"] <= b["accuracy"]["high"]
        assert b["accuracy"]["low"] <= a["accuracy"]["high"]
    assert got["cuda"]["config"]["device"].startswith("cuda:")


@NEEDS_CUDA
def test_training_on_cuda_follows_the_cpu_run(tmp_path):
    """The same batches (the data order is drawn on the CPU) and a close loss curve."""
    curves = {}
    for device in ("cpu", "cuda"):
        curves[device] = specrob.train(REPO / "examples" / "digits_mlp.py", SPECS / "cr.rspec",
                                       out=tmp_path / device, progress=False,
                                       config=specrob.TrainConfig(epochs=2, device=device,
                                                                  regime="baseline")).metrics
    for a, b in zip(curves["cpu"], curves["cuda"]):
        assert abs(a["ce"] - b["ce"]) < 1e-3
