"""Models to evaluate: an ONNX file (imported into specrob's network IR and checked against
onnxruntime) or a model file with the weights of a `specrob train` run."""
from __future__ import annotations

from specrob.errors import SpecrobError

from pathlib import Path

import torch
from torch import nn


class ModelError(SpecrobError):
    """A model that cannot be loaded; the message names the file and the fix."""


def load_model(path: str | Path, input_dim: int, classes: int,
               checkpoint: str | Path | None = None,
               shape: tuple[int, ...] | None = None) -> tuple[nn.Module, str]:
    """The network as a torch module (flattened inputs -> logits) and a description.

    `path` is a `.onnx` file, or a model file (`.py` with build()) together with
    `checkpoint`: a `checkpoint.pt` or the --out folder of `specrob train`."""
    p = Path(path)
    if p.suffix == ".onnx":
        from specrob.network import NetworkError, load_onnx_checked
        try:
            _, module = load_onnx_checked(p)
        except NetworkError as exc:
            raise ModelError(str(exc)) from None
        return module.eval(), f"{p} (ONNX, checked against onnxruntime)"
    from specrob.network.model_file import ModelFileError, adapt_to_data, build_model
    if checkpoint is None:
        raise ModelError(f"{p}: a model file needs its trained weights: --checkpoint "
                         f"runs/NAME (the --out folder of specrob train), or evaluate the "
                         f"exported model.onnx")
    ck = Path(checkpoint)
    if ck.is_dir():
        ck = ck / "checkpoint.pt"
    if not ck.is_file():
        raise ModelError(f"{ck}: no such checkpoint")
    try:
        state = torch.load(ck, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelError(f"{ck}: cannot be read as a checkpoint: {exc}") from None
    # build() as in training (recorded by specrob train), not from the evaluation data,
    # which may hold a few points of a few classes
    built = state.get("build", {}) if isinstance(state, dict) else {}
    try:
        net = build_model(p, int(built.get("input_dim", input_dim)),
                          int(built.get("classes", classes)))
    except ModelFileError as exc:
        raise ModelError(str(exc)) from None
    try:
        net.load_state_dict(state["model"] if "model" in state else state)
    except Exception as exc:
        raise ModelError(f"{ck}: cannot load these weights into {p}: {exc}") from None
    if shape is not None:  # a model written for images gets flat points reshaped
        net = adapt_to_data(net, tuple(shape), int(built.get("classes", classes)))
    return net.eval(), f"{p} with weights from {ck}"


def model_identity(path: str | Path, checkpoint: str | Path | None = None) -> list[dict]:
    """The files that determine a model's function, hashed (see `runfolder.file_identity`):
    the `.onnx` file (with its external data), or the model file and its checkpoint."""
    from specrob.runfolder import file_identity
    files = [Path(path)]
    if checkpoint is not None and Path(path).suffix != ".onnx":
        ck = Path(checkpoint)
        files.append(ck / "checkpoint.pt" if ck.is_dir() else ck)
    return [file_identity(f) for f in files]

