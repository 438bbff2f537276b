"""The ONNX model run by onnxruntime (`Oracle`): the one place specrob calls onnxruntime on a
network file, as the reference that imports and counterexamples are checked against.

Models exported with a fixed batch dimension (VNN-COMP and ERAN networks, `torch.onnx.export`
without dynamic axes) refuse any other batch size, so a fixed batch is fed that many samples at
a time (one at a time for the usual batch of 1), never a shape the model refuses.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from specrob.network.ir import NetworkError

__all__ = ["Oracle"]

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_CHUNK = 4096  # samples per onnxruntime call when the batch is symbolic


class Oracle:
    """onnxruntime (CPU, single-threaded) on the model file: `Oracle(path)(x)` maps a batch x of
    flattened (B, n) or per-sample-shaped (B, *shape) inputs to (B, m) float64 outputs."""

    def __init__(self, onnx_path: str | Path):
        import onnxruntime as ort

        self.path = str(onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.path, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:
            text = str(e).strip() or type(e).__name__
            raise NetworkError(f"{self.path}: onnxruntime cannot load the model "
                               f"({text.splitlines()[0]})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise NetworkError(f"{self.path}: the model has {len(inputs)} inputs; specrob "
                               f"needs exactly one")
        self.input = inputs[0]
        self.input_name = self.input.name
        if self.input.type not in _DTYPES:
            raise NetworkError(f"{self.path}: input '{self.input_name}' has type "
                               f"{self.input.type}; specrob needs float or double")
        self.dtype = _DTYPES[self.input.type]
        dims = list(self.input.shape)
        if not dims:
            raise NetworkError(f"{self.path}: input '{self.input_name}' has no batch "
                               f"dimension")
        first = dims[0]
        # the fixed batch size, or None when symbolic
        self.batch: int | None = first if isinstance(first, int) and first > 0 else None
        # per-sample shape; at most one unknown dimension, which a reshape infers
        self.shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in dims[1:])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 0:
            raise NetworkError(f"{self.path}: expected a batch of inputs, got a scalar")
        count = x.shape[0]
        try:
            feed = x.astype(self.dtype, copy=False).reshape((count, *self.shape))
        except ValueError:
            raise NetworkError(f"{self.path}: a batch of shape {x.shape} does not fit the "
                               f"model's input (batch, {', '.join(map(str, self.shape))})"
                               ) from None
        if count == 0:
            return np.zeros((0, self._output_size()), np.float64)
        size = self.batch or _CHUNK
        outputs = []
        for start in range(0, count, size):
            chunk = feed[start:start + size]
            real = len(chunk)
            if self.batch is not None and real < self.batch:  # pad a fixed batch, drop later
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - real, 0)])
            out = self.session.run(None, {self.input_name: np.ascontiguousarray(chunk)})[0]
            out = np.asarray(out)
            if self.batch == 1 and (out.ndim == 0 or out.shape[0] != 1):
                out = out.reshape(1, -1)  # an output without a batch axis
            outputs.append(out.reshape(len(chunk), -1)[:real])
        return np.concatenate(outputs).astype(np.float64)

    def _output_size(self) -> int:
        dims = self.session.get_outputs()[0].shape[1:]
        if all(isinstance(d, int) for d in dims):
            return math.prod(dims)
        probe = np.zeros((self.batch or 1, *(d if d > 0 else 1 for d in self.shape)),
                         self.dtype)
        return int(np.asarray(self.session.run(None, {self.input_name: probe})[0]).size
                   // len(probe))
