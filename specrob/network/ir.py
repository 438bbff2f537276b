"""The network IR: what every network back end (torch execution, bound propagation, Marabou)
consumes. Frozen dataclasses over numpy arrays.

A `Network` has one input, a batch of samples of a fixed per-sample shape, one output and a
tuple of nodes in topological order over named values. Every shape in the IR is **per
sample**: the batch dimension is implicit, never mixed with the others, and axes (e.g.
`Softmax.axis`) count from the first per-sample dimension (ONNX axis - 1). Node `inputs` name
variable values only (the network input or an earlier node's output); constants are folded
into the nodes' fields, so `Constant` and `Identity` never appear, `Flatten` is a `Reshape`,
`MatMul` (+ `Add`) and `Gemm` are `Affine`, and `Add`/`Sub`/`Mul`/`Div` by a constant are
`Elementwise` (a chain of them one node), a `BatchNormalization` after a `Conv` or
`Affine` (or before an `Affine` on features) is folded into its weights, `Dropout`, `Cast`
between float types and computations on shapes disappear, and `Squeeze`, `Unsqueeze` and
`Transpose`s that keep the data order are `Reshape`s. Weights are float64 (exact copies of the file's
float32 values; folded values are computed in float64) and read-only. Each node keeps the ONNX
node name and op_type it came from (`"MatMul+Add"`, names `"a+b"` for folded nodes), for messages only.

Nodes hold numpy arrays, which have no truthful `==`, so nodes and networks compare by
identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from specrob.errors import SpecrobError


class NetworkError(SpecrobError):
    """A network file that specrob cannot load or does not compute what it claims; the message
    names the file, and the operator and node when one is at fault."""


def _frozen(array: np.ndarray) -> np.ndarray:
    """A read-only float64 copy, so a frozen node cannot be changed through its arrays."""
    out = np.array(array, dtype=np.float64)
    out.setflags(write=False)
    return out


def _array() -> np.ndarray:
    return field(repr=False)


@dataclass(frozen=True, eq=False, kw_only=True)
class Node:
    """One operation: reads the variable values `inputs`, writes `output` of per-sample `shape`."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    output: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                object.__setattr__(self, name, _frozen(value))


# --- linear nodes -------------------------------------------------------------------------

@dataclass(frozen=True, eq=False, kw_only=True)
class Affine(Node):
    """y = x W^T + b on the last axis (Gemm, MatMul by a constant, MatMul + Add): weight is
    (out, in), bias (out,); the other axes pass through."""

    weight: np.ndarray = _array()
    bias: np.ndarray = _array()

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


@dataclass(frozen=True, eq=False, kw_only=True)
class Elementwise(Node):
    """y = x * scale + shift coordinatewise (Add/Sub/Mul/Div by a constant); scale and shift
    have the node's shape, which is also the input's."""

    scale: np.ndarray = _array()
    shift: np.ndarray = _array()


@dataclass(frozen=True, eq=False, kw_only=True)
class Add(Node):
    """y = left + right, or left - right when `subtract` (Sub): two variable values of the same
    shape, e.g. a residual connection."""

    subtract: bool = False


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv(Node):
    """2-D convolution of a (C, H, W) input: weight (C_out, C / group, kH, kW), bias (C_out,);
    pads are (top, left, bottom, right), as ONNX orders them."""

    weight: np.ndarray = _array()
    bias: np.ndarray = _array()
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)
    group: int = 1


@dataclass(frozen=True, eq=False, kw_only=True)
class BatchNorm(Node):
    """Inference-mode batch normalisation over axis 0 (channels):
    y = (x - mean) / sqrt(var + epsilon) * scale + bias."""

    scale: np.ndarray = _array()
    bias: np.ndarray = _array()
    mean: np.ndarray = _array()
    var: np.ndarray = _array()
    epsilon: float = 1e-5

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-channel (a, b) with y = a x + b: what a linear back end needs."""
        a = self.scale / np.sqrt(self.var + self.epsilon)
        return a, self.bias - a * self.mean


# --- activations and shape nodes -----------------------------------------------------------

@dataclass(frozen=True, eq=False, kw_only=True)
class Relu(Node):
    """y = max(x, 0)."""


@dataclass(frozen=True, eq=False, kw_only=True)
class LeakyRelu(Node):
    """y = x if x >= 0 else alpha * x."""

    alpha: float = 0.01


@dataclass(frozen=True, eq=False, kw_only=True)
class Clip(Node):
    """y = min(max(x, low), high); a missing (None) bound is unbounded."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Sigmoid(Node):
    """y = 1 / (1 + exp(-x))."""


@dataclass(frozen=True, eq=False, kw_only=True)
class Tanh(Node):
    """y = tanh(x)."""


@dataclass(frozen=True, eq=False, kw_only=True)
class Softmax(Node):
    """Softmax along one per-sample axis (ONNX axis - 1; opset < 13's flattening softmax is
    imported as Reshape, Softmax, Reshape)."""

    axis: int = -1


@dataclass(frozen=True, eq=False, kw_only=True)
class LogSoftmax(Node):
    """log(softmax(x)) along one per-sample axis (as `Softmax`); usually the last node of a
    classifier trained with NLL loss. Not a `Softmax`: back ends that relax softmax do not
    relax this one."""

    axis: int = -1


@dataclass(frozen=True, eq=False, kw_only=True)
class Reshape(Node):
    """Reshape (or Flatten) each sample to `shape`; the data order is unchanged."""


@dataclass(frozen=True, eq=False, kw_only=True)
class MaxPool(Node):
    """2-D max pooling of a (C, H, W) input; padding never wins (it is -inf). Pads are
    (top, left, bottom, right)."""

    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilations: tuple[int, int] = (1, 1)


@dataclass(frozen=True, eq=False, kw_only=True)
class AveragePool(Node):
    """2-D average pooling of a (C, H, W) input; padding is zeros that count in the average
    only when `count_include_pad`. Pads are (top, left, bottom, right)."""

    kernel: tuple[int, int] = (1, 1)
    strides: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False


AnyNode = (Affine | Elementwise | Add | Conv | BatchNorm | Relu | LeakyRelu | Clip | Sigmoid
           | Tanh | Softmax | LogSoftmax | Reshape | MaxPool | AveragePool)
NODE_KINDS: tuple[type[Node], ...] = (Affine, Elementwise, Add, Conv, BatchNorm, Relu, LeakyRelu,
                                      Clip, Sigmoid, Tanh, Softmax, LogSoftmax, Reshape, MaxPool,
                                      AveragePool)


# --- the network ---------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Network:
    """A feed-forward network from a batch of `input_shape` samples to `output_shape` outputs
    (the logits, m = output_size of them per sample); `nodes` are topologically ordered."""

    input_name: str  # as in the file (the name to feed onnxruntime)
    input_shape: tuple[int, ...]
    output_name: str  # the value holding the logits (the file's output name, unless aliased)
    nodes: tuple[Node, ...]
    source: str = "<network>"
    batch: int | None = None  # the declared batch size: None when symbolic, else fixed (1)
    dtype: str = "float32"  # the input's element type in the file

    def __post_init__(self) -> None:
        shapes = {self.input_name: tuple(self.input_shape)}
        for node in self.nodes:
            for value in node.inputs:
                if value not in shapes:
                    raise NetworkError(f"{self.source}: node '{node.name}' reads '{value}' "
                                       f"before it is computed (nodes must be in topological "
                                       f"order)")
            if node.output in shapes:
                raise NetworkError(f"{self.source}: value '{node.output}' is written twice")
            shapes[node.output] = tuple(node.shape)
        if self.output_name not in shapes:
            raise NetworkError(f"{self.source}: the output '{self.output_name}' is not computed")
        object.__setattr__(self, "_shapes", shapes)

    def shape_of(self, value: str) -> tuple[int, ...]:
        """The per-sample shape of a value (the input or a node's output)."""
        return self._shapes[value]  # type: ignore[attr-defined]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.shape_of(self.output_name)

    @property
    def input_size(self) -> int:
        """n: the length of a flattened input sample."""
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        """m: the number of outputs (logits) per sample."""
        return math.prod(self.output_shape)

    def describe(self) -> str:
        """One line per node: kind, ONNX op and name, per-sample output shape."""
        lines = [f"input {self.input_name} {self.input_shape}"]
        lines += [f"{type(n).__name__:<12} {n.op_type:<20} {n.name!r} -> {n.shape}"
                  for n in self.nodes]
        lines.append(f"output {self.output_name} {self.output_shape}")
        return "\n".join(lines)
