"""Exporting a trained network to ONNX, checked against torch with onnxruntime."""
from __future__ import annotations

from specrob.errors import SpecrobError

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


class OnnxExportError(SpecrobError):
    """The ONNX file does not compute what the torch model computes."""


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path,
                tolerance: float = 1e-5) -> float:
    """Write `path` (input "x" of shape (batch, n), output "logits") and check it on the
    example batch with onnxruntime: the largest absolute difference must be at most
    `tolerance` times the largest |logit| (at least 1: float32 rounding grows with the
    logits, e.g. a clamp(-100, 100) network's). Returns that difference; raises
    OnnxExportError."""
    import onnxruntime as ort

    model = model.eval().cpu()
    example = example.detach().cpu().float()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():  # the TorchScript exporter is deprecated, not broken:
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo needs onnxscript
            torch.onnx.export(model, (example[:1],), str(path), input_names=["x"],
                              output_names=["logits"], dynamic_axes={"x": {0: "batch"},
                                                                     "logits": {0: "batch"}},
                              opset_version=17, dynamo=False)
    except OSError as exc:
        raise OnnxExportError(f"{path}: cannot write ({exc.strerror or exc}); the checkpoint is "
                          f"kept: free space and run again") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"x": example.numpy()})
    with torch.no_grad():
        torch_out = model(example).numpy()
    diff = float(np.abs(onnx_out - torch_out).max())
    scale = max(1.0, float(np.abs(torch_out).max(initial=0.0)))
    if not diff <= tolerance * scale:
        raise OnnxExportError(f"{path}: onnxruntime differs from torch by {diff:.3g} "
                              f"(tolerance {tolerance:g} x {scale:.3g}, the largest |logit|)")
    return diff
