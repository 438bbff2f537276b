"""Loading an ONNX network checked against onnxruntime (`load_onnx_checked`): the torch module
specrob runs must compute what the file computes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from specrob.network.ir import Network, NetworkError
from specrob.network.onnx_import import load_onnx
from specrob.network.oracle import Oracle
from specrob.network.torch_exec import to_torch
from specrob.numerics import module_device

__all__ = ["load_onnx_checked", "check_against_onnxruntime", "input_shape", "sizes",
           "external_data_files"]


def input_shape(net: Network) -> tuple[int, ...]:
    """The per-sample input shape (without the batch dimension)."""
    return tuple(net.input_shape)


def sizes(net: Network) -> tuple[int, int]:
    """(n, m): the flattened input size and the number of outputs (logits)."""
    return net.input_size, net.output_size


def load_onnx_checked(path: str | Path, tolerance: float = 1e-5, samples: int = 16,
                      seed: int = 0) -> tuple[Network, nn.Module]:
    """Import the file, build its torch module and check both agree with onnxruntime on
    `samples` uniform random inputs in [0, 1]; raise NetworkError when they do not."""
    net = load_onnx(path)
    module = to_torch(net)
    x = np.random.default_rng(seed).random((samples, *net.input_shape))
    check_against_onnxruntime(path, net, module, x, tolerance)
    return net, module


def check_against_onnxruntime(path: str | Path, net: Network, module: nn.Module,
                              x: np.ndarray, tolerance: float = 1e-5) -> float:
    """Run onnxruntime (CPU) and the module on the batch x; return max |difference|, or raise
    NetworkError when it exceeds tolerance * max(1, max |onnxruntime output|)."""
    expected = _onnxruntime(path, net, x)
    if not np.isfinite(expected).all():
        bad = int((~np.isfinite(expected)).any(-1).sum())
        raise NetworkError(f"{path}: the model's outputs are not finite (inf or NaN) on {bad} "
                           f"of {len(x)} random inputs in [0, 1] (onnxruntime): its weights "
                           f"or its arithmetic overflow float32; specrob refuses such a model")
    device = module_device(module)
    with torch.no_grad():
        got = module(torch.as_tensor(x, dtype=torch.float32, device=device))
    got = got.double().cpu().numpy()
    diff = np.abs(got - expected)
    bound = tolerance * max(1.0, float(np.abs(expected).max(initial=0.0)))
    worst = float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))
    if not worst <= bound:
        i, j = np.unravel_index(np.argmax(np.nan_to_num(diff, nan=np.inf)), diff.shape)
        raise NetworkError(f"{path}: the imported network differs from onnxruntime by "
                           f"{worst:.3g} (sample {i}, output {j}: torch {got[i, j]:.6g}, "
                           f"onnxruntime {expected[i, j]:.6g}); tolerance {bound:.3g}")
    return worst


def _onnxruntime(path: str | Path, net: Network, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs for the batch x, as (B, m) float64 (one sample at a time when
    the file fixes the batch size)."""
    out = Oracle(path)(x)
    if out.shape[1] != net.output_size:
        raise NetworkError(f"{path}: onnxruntime gives {out.shape[1]} outputs per sample, the "
                           f"imported network {net.output_size}")
    return out


def external_data_files(onnx_path: str | Path) -> list[str]:
    """The external-data files an ONNX model refers to (`.onnx.data` beside it, as torch's
    exporter writes them), as the relative names stored in the model."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data
    model = onnx.load(str(onnx_path), load_external_data=False)
    names = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return sorted(names)
