"""Shared fixtures. Torch (when present) runs single-threaded: two threads on a busy 2-core
machine were measured 100x slower."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
try:  # pragma: no cover - torch arrives with the training issue
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parent.parent
SPECS = sorted((REPO / "specs").glob("*.rspec"))
# the project's shared inputs (benchmarks, cases), beside the checkout in development and CI
SHARED = REPO.parent / "shared"


@pytest.fixture
def write(tmp_path):
    """Write a spec file (text or bytes) into a temporary folder and return its path."""
    def _write(content: str | bytes, name: str = "spec.rspec") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path
    return _write


def export_mlp(path, inputs: int = 64, hidden: int = 16, classes: int = 10, seed: int = 0,
               scale: float = 1.0) -> Path:
    """A random ReLU MLP inputs-hidden-classes (weights times `scale`) exported to ONNX with a
    symbolic batch: the small model the CLI tests run commands on."""
    import warnings

    import torch
    from torch import nn
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, classes)).eval()
    if scale != 1.0:
        with torch.no_grad():
            for prm in net.parameters():
                prm.mul_(scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.rand(1, inputs),), str(path), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                          dynamo=False)
    return Path(path)



def explicit_devices():
    """A context in which specrob's code creating a tensor of more than 0 dimensions without
    `device=` raises AssertionError naming the call: the oracle of `--device` on a machine
    without CUDA. On a GPU, such a tensor would land on the CPU beside CUDA data (0-dim
    tensors mix freely, torch.from_numpy / *_like follow their source, and modules are built
    on the CPU and moved). Use as `with explicit_devices(): ...`."""
    import sys

    import torch
    from torch.overrides import TorchFunctionMode

    import specrob
    package = str(Path(specrob.__file__).resolve().parent)  # the package, not tests/ or examples/

    factories = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.full,
                 torch.empty, torch.arange, torch.linspace, torch.eye, torch.rand, torch.randn,
                 torch.randint, torch.randperm}

    class ExplicitDevices(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if func in factories and kwargs.get("device") is None \
                    and not (args and isinstance(args[0], torch.Tensor)) \
                    and isinstance(out, torch.Tensor) and out.dim() > 0:
                caller = sys._getframe(1)  # the code that called the factory
                where = caller.f_code.co_filename
                if str(Path(where).resolve()).startswith(package):
                    raise AssertionError(f"{func.__name__} without device= at {where}:"
                                         f"{caller.f_lineno}")
            return out

    return ExplicitDevices()


def train_cli_output(tmp_path, monkeypatch, *args: str, code: int = 2) -> str:
    """`specrob train examples/digits_mlp.py specs/cr.rspec --epochs 1 --quiet ARGS` in
    tmp_path: asserts the exit code and returns the output with its whitespace collapsed."""
    from typer.testing import CliRunner

    from specrob.cli import app
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["train", str(REPO / "examples" / "digits_mlp.py"),
                                      str(REPO / "specs" / "cr.rspec"), "--epochs", "1",
                                      "--quiet", *args])
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())
