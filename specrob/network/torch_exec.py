"""The network IR -> a torch module (`to_torch`): batched, weights as float32 buffers (so
`.to(device)` moves them and input gradients flow, while `parameters()` stays empty)."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, LogSoftmax, MaxPool, Network, Node, Relu, Reshape, Sigmoid,
                                Softmax, Tanh)

__all__ = ["to_torch", "TorchNetwork"]


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32))


def _pad(pads: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """ONNX (top, left, bottom, right) -> F.pad's (left, right, top, bottom)."""
    top, left, bottom, right = pads
    return left, right, top, bottom


class _Step(nn.Module):
    """One IR node as a module; `buffers` become float32 buffers of the same names."""

    def __init__(self, node: Node, **buffers: np.ndarray):
        super().__init__()
        self.node_name = node.name
        for name, array in buffers.items():
            self.register_buffer(name, _tensor(array))

    def extra_repr(self) -> str:
        return repr(self.node_name)


class _Affine(_Step):
    weight: torch.Tensor  # buffers (registered in _Step.__init__)
    bias: torch.Tensor

    def __init__(self, node: Affine):
        super().__init__(node, weight=node.weight, bias=node.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Elementwise(_Step):
    scale: torch.Tensor  # buffers
    shift: torch.Tensor

    def __init__(self, node: Elementwise):
        super().__init__(node, scale=node.scale, shift=node.shift)
        self.identity_scale = bool((node.scale == 1).all())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x if self.identity_scale else x * self.scale) + self.shift


class _Add(_Step):
    def __init__(self, node: Add):
        super().__init__(node)
        self.subtract = node.subtract

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return left - right if self.subtract else left + right


class _Conv(_Step):
    weight: torch.Tensor  # buffers
    bias: torch.Tensor

    def __init__(self, node: Conv):
        super().__init__(node, weight=node.weight, bias=node.bias)
        top, left, bottom, right = node.pads
        self.symmetric = top == bottom and left == right
        self.padding = (top, left) if self.symmetric else (0, 0)
        self.pads = _pad(node.pads)
        self.stride, self.dilation, self.groups = node.strides, node.dilations, node.group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = F.pad(x, self.pads)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class _BatchNorm(_Step):
    scale: torch.Tensor  # buffers
    bias: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor

    def __init__(self, node: BatchNorm):
        super().__init__(node, scale=node.scale, bias=node.bias, mean=node.mean, var=node.var)
        self.epsilon = node.epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.mean, self.var, self.scale, self.bias, training=False,
                            eps=self.epsilon)


class _Pointwise(_Step):
    """A parameter-free node (activation, softmax, reshape); plain data, so it pickles."""

    def __init__(self, node: Node):
        super().__init__(node)
        self.kind = type(node).__name__
        self.alpha = getattr(node, "alpha", 0.0)
        self.low, self.high = getattr(node, "low", None), getattr(node, "high", None)
        self.dim = getattr(node, "axis", 0) + 1
        self.shape = tuple(node.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = self.kind
        if kind == "Relu":
            return F.relu(x)
        if kind == "LeakyRelu":
            return F.leaky_relu(x, self.alpha)
        if kind == "Clip":
            return x if self.low is None and self.high is None else \
                torch.clamp(x, self.low, self.high)
        if kind == "Sigmoid":
            return torch.sigmoid(x)
        if kind == "Tanh":
            return torch.tanh(x)
        if kind == "Softmax":
            return torch.softmax(x, self.dim)
        if kind == "LogSoftmax":
            return torch.log_softmax(x, self.dim)
        return x.reshape(x.shape[0], *self.shape)  # Reshape


class _MaxPool(_Step):
    def __init__(self, node: MaxPool):
        super().__init__(node)
        self.kernel, self.stride, self.dilation = node.kernel, node.strides, node.dilations
        self.pads = _pad(node.pads) if any(node.pads) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads:
            x = F.pad(x, self.pads, value=-math.inf)
        return F.max_pool2d(x, self.kernel, self.stride, dilation=self.dilation)


class _AveragePool(_Step):
    def __init__(self, node: AveragePool):
        super().__init__(node)
        self.kernel, self.stride = node.kernel, node.strides
        self.pads = _pad(node.pads) if any(node.pads) else None
        self.count_include_pad = node.count_include_pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pads is None:
            return F.avg_pool2d(x, self.kernel, self.stride)
        mean = F.avg_pool2d(F.pad(x, self.pads), self.kernel, self.stride)
        if self.count_include_pad:
            return mean
        # the mean over real pixels only: the padded mean over the padded mean of a mask
        ones = F.pad(torch.ones_like(x[:1, :1]), self.pads)
        return mean / F.avg_pool2d(ones, self.kernel, self.stride)


_STEPS: dict[type, type[_Step]] = {
    Affine: _Affine, Elementwise: _Elementwise, Add: _Add, Conv: _Conv, BatchNorm: _BatchNorm,
    MaxPool: _MaxPool, AveragePool: _AveragePool, Relu: _Pointwise, LeakyRelu: _Pointwise,
    Clip: _Pointwise, Sigmoid: _Pointwise, Tanh: _Pointwise, Softmax: _Pointwise,
    LogSoftmax: _Pointwise,
    Reshape: _Pointwise,
}


class TorchNetwork(nn.Module):
    """Runs a Network on a batch (B, *input_shape), or (B, n) flattened, giving (B, m)."""

    _dtype_probe: torch.Tensor  # a buffer

    def __init__(self, net: Network):
        super().__init__()
        self.network = net
        self.input_shape = tuple(net.input_shape)
        self.input_size, self.output_size = net.input_size, net.output_size
        self.steps = nn.ModuleList(_STEPS[type(node)](node) for node in net.nodes)
        self.register_buffer("_dtype_probe", torch.zeros(()), persistent=False)
        # which values to forget after each step, so intermediates do not pile up
        last = {net.input_name: -1}
        for i, node in enumerate(net.nodes):
            last.update((v, i) for v in node.inputs)
        last[net.output_name] = len(net.nodes)
        self._wires = [(node.inputs, node.output,
                        tuple(v for v in set(node.inputs) if last[v] == i))
                       for i, node in enumerate(net.nodes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape[1:] != self.input_shape:
            if len(shape) != 2 or shape[1] != self.input_size:
                raise ValueError(f"{self.network.source}: expected a batch of shape "
                                 f"(B, {', '.join(map(str, self.input_shape))}) or "
                                 f"(B, {self.input_size}); got {shape}")
            x = x.reshape(shape[0], *self.input_shape)
        values = {self.network.input_name: x.to(self._dtype_probe.dtype)}
        for step, (inputs, output, done) in zip(self.steps, self._wires, strict=True):
            values[output] = step(*[values[v] for v in inputs])
            for v in done:
                del values[v]
        return values[self.network.output_name].reshape(shape[0], self.output_size)


def to_torch(net: Network) -> TorchNetwork:
    """A torch module computing the network (in eval mode; it has no training behaviour)."""
    return TorchNetwork(net).eval()
