"""ONNX -> the network IR (`load_onnx`), with a NetworkError naming the file, operator and node
for whatever specrob does not support.

Shapes are static except the batch dimension, so the importer computes every value's
per-sample shape itself, resolves padding (auto_pad), Reshape's 0 and -1, opset differences
(Clip's attributes before opset 11, the flattening Softmax before 13) and folds constants into
the nodes. Any node of the default domain whose inputs are all constants is evaluated (onnx's
reference implementation at the model's opset): the `Shape`, `Gather`, `Unsqueeze`, `Concat`,
`Slice`, `Mod`, `Cast` chains that x.view(x.size(0), -1) and nn.Unflatten export become a
constant Reshape target. A symbolic batch size enters those computations as a stand-in,
evaluated for two values; a target whose first entry is the batch size keeps the batch, any
other dependence on it is refused. A fixed batch of 1 is recorded (`Network.batch`).
`Constant`, `Identity`, `Dropout` and float `Cast` disappear, a constant operand turns Add/Sub/Mul/Div into
`Elementwise`, chains of `Elementwise` become one, and an `Elementwise` that is constant along
all but the last axis after an `Affine` (MatMul + Add, Gemm + Mul) folds into it.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, LogSoftmax, MaxPool, Network, NetworkError, Node, Relu,
                                Reshape, Sigmoid, Softmax, Tanh)

__all__ = ["load_onnx", "NetworkError", "SUPPORTED"]

# operator -> the attributes it may carry (anything else is refused rather than ignored)
_ATTRIBUTES: dict[str, frozenset[str]] = {name: frozenset(attrs) for name, attrs in {
    "Gemm": {"alpha", "beta", "transA", "transB", "broadcast"},
    "MatMul": set(),
    "Add": {"broadcast"}, "Sub": {"broadcast"}, "Mul": {"broadcast"}, "Div": {"broadcast"},
    "Conv": {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"},
    "Relu": set(), "LeakyRelu": {"alpha"}, "Clip": {"min", "max"},
    "Sigmoid": set(), "Tanh": set(), "Softmax": {"axis"},
    "Flatten": {"axis"}, "Reshape": {"allowzero", "shape"},
    "BatchNormalization": {"epsilon", "momentum", "training_mode", "spatial", "is_test"},
    "MaxPool": {"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order",
                "strides"},
    "AveragePool": {"auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape",
                    "pads", "strides"},
    "GlobalAveragePool": set(), "GlobalMaxPool": set(), "LogSoftmax": {"axis"},
    "Dropout": {"ratio", "seed", "is_test"}, "Cast": {"to", "saturate", "round_mode"},
    "Squeeze": {"axes"}, "Unsqueeze": {"axes"}, "Transpose": {"perm"},
    "Shape": {"start", "end"}, "Size": set(),
    "Constant": {"value", "value_float", "value_floats", "value_int", "value_ints"},
    "Identity": set(),
}.items()}
SUPPORTED: tuple[str, ...] = tuple(_ATTRIBUTES)
# what to do about an operator specrob does not handle on the data (any operator of the default
# domain is fine on constants: shape computations are folded)
_FEED_FORWARD = "specrob handles feed-forward classifiers only"
_ACTIVATION = "replace it by Relu, LeakyRelu, Clip, Sigmoid or Tanh"
_HINTS: dict[str, str] = {
    **dict.fromkeys(("LSTM", "GRU", "RNN", "Loop", "Scan", "If"), _FEED_FORWARD),
    **dict.fromkeys(("Gelu", "Erf", "Elu", "Selu", "Celu", "Softplus", "Softsign", "Mish",
                     "HardSigmoid", "HardSwish", "PRelu", "ThresholdedRelu", "Exp", "Log",
                     "Sqrt", "Pow", "Abs", "Neg", "Sin", "Cos"), _ACTIVATION),
    "Pad": "use the padding of Conv or the pooling layer instead of a separate Pad",
    "ReduceMean": "for a spatial average use GlobalAveragePool (nn.AdaptiveAvgPool2d(1))",
    "ConvTranspose": "replace the transposed convolution by Conv (with upsampling outside "
                     "the network)",
    "Resize": "resize the input outside the network", "Upsample": "resize the input outside "
                                                                  "the network",
    **dict.fromkeys(("Gather", "Slice", "Concat", "Split", "Expand", "Tile", "Where"),
                    "specrob handles this operator on constant (shape) values only; on the "
                    "data, use Reshape/Flatten and layers that keep the samples apart"),
}
_DEFAULT_HINT = ("replace it by supported operators, or re-export the model (torch.onnx.export "
                 "with an opset_version from 9 to 18)")
# stand-ins for a symbolic batch size in folded shape computations: a value computed from
# `Shape` is evaluated for both, and what differs depends on the batch size
_BATCH, _BATCH_ALT = 23, 29
_IGNORED = frozenset({"consumed_inputs"})  # an opset < 6 memory hint with no effect on values
_FLOAT_TYPES: dict[int, str] = {TensorProto.FLOAT: "float32", TensorProto.DOUBLE: "float64"}


def load_onnx(path: str | Path) -> Network:
    """Read an ONNX classifier into the IR, or raise NetworkError saying what is wrong."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise NetworkError(f"{source}: no such file")
    if not path.is_file():
        raise NetworkError(f"{source}: not a file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError and friends
        raise NetworkError(f"{source}: not an ONNX model ({_first_line(e)})") from None
    graph = model.graph
    _check_operators(source, graph)
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise NetworkError(f"{source}: not a valid ONNX model ({_first_line(e)})") from None
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not opsets:
        raise NetworkError(f"{source}: the model imports no ONNX (default-domain) opset")
    return _Importer(source, graph, opsets[0]).run()


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def _check_operators(source: str, graph: onnx.GraphProto) -> None:
    """Operators of another domain or unknown to ONNX, and unsupported operators on the data,
    are refused before anything else (on constants any operator of the default domain is
    folded). Nodes are in topological order in a valid file; the importer checks again."""
    weights = {t.name for t in graph.initializer}
    data = {i.name for i in graph.input if i.name not in weights}  # values computed from x
    for index, node in enumerate(graph.node):
        reads_data = any(v in data for v in node.input)
        if reads_data and node.op_type not in ("Shape", "Size"):
            data.update(node.output)
        if node.domain not in ("", "ai.onnx"):
            raise _unsupported(source, node, index, f"{node.domain}.{node.op_type}",
                               "specrob reads the default ONNX domain only; export without "
                               "custom operators")
        if not onnx.defs.has(node.op_type):
            raise _unsupported(source, node, index, node.op_type, "it is not an ONNX "
                               "operator")
        if reads_data and node.op_type not in _ATTRIBUTES:
            raise _unsupported(source, node, index)


def _unsupported(source: str, node: onnx.NodeProto, index: int, op: str | None = None,
                 hint: str | None = None) -> NetworkError:
    op = op or node.op_type
    hint = hint or _HINTS.get(node.op_type, _DEFAULT_HINT)
    return NetworkError(f"{source}: operator '{op}' (node '{_label(node, index)}', index "
                        f"{index}) is not supported: {hint}. Supported on the data: "
                        f"{', '.join(SUPPORTED)}")


def _label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"#{index}"


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif isinstance(value, TensorProto):
            value = numpy_helper.to_array(value)
        out[attribute.name] = value
    return out


def _live_nodes(source: str, graph: onnx.GraphProto, output: str) -> list[int]:
    """Indices of the nodes the output depends on, topologically ordered (file order where
    the file allows it)."""
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    live: set[int] = set()
    stack = [output]
    while stack:
        i = producer.get(stack.pop())
        if i is not None and i not in live:
            live.add(i)
            stack.extend(name for name in graph.node[i].input if name)
    waiting = {i: {producer[v] for v in graph.node[i].input if v in producer} for i in live}
    readers: dict[int, list[int]] = {i: [] for i in live}
    for i, deps in waiting.items():
        for d in deps:
            readers[d].append(i)
    ready = [i for i, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for r in readers[i]:
            waiting[r].discard(i)
            if not waiting[r]:
                heapq.heappush(ready, r)
    if len(order) != len(live):
        raise NetworkError(f"{source}: the graph has a cycle")
    return order


class _Importer:
    """One pass over the live ONNX nodes, keeping constants, aliases and per-sample shapes."""

    def __init__(self, source: str, graph: onnx.GraphProto, opset: int):
        self.source, self.graph, self.opset = source, graph, opset
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t)
                                              for t in graph.initializer}
        self.alias: dict[str, str] = {}
        # constants computed from a symbolic batch size: their value for the other stand-in
        self.alternate: dict[str, np.ndarray] = {}
        self.read: set[str] = set()  # the values some live node reads
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.nodes: list[Node] = []
        self.batch: int | None = None
        self.at = ""  # "Gemm node 'fc1'" while a node is being imported

    def error(self, message: str) -> NetworkError:
        where = f"{self.at}: " if self.at else ""
        return NetworkError(f"{self.source}: {where}{message}")

    # --- graph inputs and outputs -------------------------------------------------------

    def run(self) -> Network:
        input_name, dtype = self._input()
        outputs = list(self.graph.output)
        if len(outputs) != 1:
            raise self.error(f"the model has {len(outputs)} outputs "
                             f"({', '.join(o.name for o in outputs) or 'none'}); "
                             f"specrob needs exactly one (the logits)")
        order = _live_nodes(self.source, self.graph, outputs[0].name)
        self.read = {v for i in order for v in self.graph.node[i].input} | {outputs[0].name}
        for index in order:
            node = self.graph.node[index]
            self.at = f"{node.op_type} node '{_label(node, index)}' (index {index})"
            self._import(node, index)
        self.at = ""
        output = self.alias.get(outputs[0].name, outputs[0].name)
        if output not in self.shapes:
            what = "a constant" if output in self.consts else "not computed"
            raise self.error(f"the output '{outputs[0].name}' is {what}")
        self._check_declared(outputs[0], self.shapes[output])
        nodes = _fold_elementwise(_fold_batchnorm(self.nodes, output), output)
        return Network(input_name=input_name, input_shape=self.shapes[input_name],
                       output_name=output, nodes=tuple(nodes), source=self.source,
                       batch=self.batch, dtype=dtype)

    def _input(self) -> tuple[str, str]:
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs) or "none"
            raise self.error(f"the model has {len(inputs)} inputs besides its weights "
                             f"({names}); specrob needs exactly one")
        value = inputs[0]
        tensor = value.type.tensor_type
        if tensor.elem_type not in _FLOAT_TYPES:
            name = TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "none"
            raise self.error(f"input '{value.name}' has element type {name}; "
                             f"specrob needs FLOAT or DOUBLE")
        if not tensor.HasField("shape") or len(tensor.shape.dim) < 2:
            raise self.error(f"input '{value.name}' needs a known shape (batch, ...) with a "
                             f"leading batch dimension")
        dims = list(tensor.shape.dim)
        if dims[0].HasField("dim_value"):
            if dims[0].dim_value != 1:
                raise self.error(f"input '{value.name}' has a fixed batch size of "
                                 f"{dims[0].dim_value}; the batch dimension must be symbolic "
                                 f"or 1")
            self.batch = 1
        shape = []
        for axis, dim in enumerate(dims[1:], start=1):
            if not dim.HasField("dim_value") or dim.dim_value <= 0:
                what = f"'{dim.dim_param}'" if dim.dim_param else "unknown"
                raise self.error(f"input '{value.name}' has a dynamic dimension ({what}) at "
                                 f"axis {axis}; only the batch dimension (axis 0) may be "
                                 f"dynamic")
            shape.append(dim.dim_value)
        self.shapes[value.name] = tuple(shape)
        return value.name, _FLOAT_TYPES[tensor.elem_type]

    def _check_declared(self, output: onnx.ValueInfoProto, shape: tuple[int, ...]) -> None:
        tensor = output.type.tensor_type
        if not tensor.HasField("shape"):
            return
        dims = list(tensor.shape.dim)
        declared = [d.dim_value if d.HasField("dim_value") else None for d in dims[1:]]
        if len(dims) != len(shape) + 1 or any(d is not None and d != s
                                              for d, s in zip(declared, shape, strict=True)):
            full = ["batch"] + [str(d) for d in shape]
            raise self.error(f"output '{output.name}' is declared with shape "
                             f"({', '.join(str(d.dim_value or d.dim_param or '?') for d in dims)})"
                             f" but computes ({', '.join(full)})")

    # --- operands -----------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        return self.alias.get(name, name)

    def _is_const(self, name: str) -> bool:
        return self._resolve(name) in self.consts

    def _const(self, name: str, what: str) -> np.ndarray:
        name = self._resolve(name)
        if name not in self.consts:
            raise self.error(f"{what} ('{name}') must be a constant (an initializer, a "
                             f"Constant node or a computation on shapes)")
        if name in self.alternate:
            raise self.error(f"{what} ('{name}') depends on the batch size; specrob needs "
                             f"per-sample constants here")
        return self.consts[name]

    def _var(self, name: str, what: str = "the input") -> str:
        name = self._resolve(name)
        if name in self.consts:
            raise self.error(f"{what} ('{name}') is a constant; operators on constants only "
                             f"are not supported")
        if name not in self.shapes:
            raise self.error(f"{what} ('{name}') is not defined")
        return name

    def _optional(self, node: onnx.NodeProto, index: int) -> str | None:
        return node.input[index] if index < len(node.input) and node.input[index] else None

    def _emit(self, cls: Callable[..., Node], node: onnx.NodeProto, index: int,
              inputs: tuple[str, ...], shape: tuple[int, ...], op_type: str | None = None,
              output: str | None = None, **fields: Any) -> str:
        output = output or node.output[0]
        self.nodes.append(cls(name=_label(node, index), op_type=op_type or node.op_type,
                              inputs=inputs, output=output, shape=shape, **fields))
        self.shapes[output] = tuple(shape)
        return output

    # --- operators ----------------------------------------------------------------------

    def _import(self, node: onnx.NodeProto, index: int) -> None:
        attrs = _attributes(node)
        op = node.op_type
        inputs = [v for v in node.input if v]
        if op not in ("Constant", "Shape", "Size") and inputs and all(
                self._is_const(v) for v in inputs):
            self._fold(node)  # a computation on constants (shapes, weights): its value
            return
        if op not in _ATTRIBUTES:
            raise _unsupported(self.source, node, index)
        for name in attrs:
            if name not in _ATTRIBUTES[op] and name not in _IGNORED:
                raise self.error(f"attribute '{name}' is not supported")
        extra = [o for o in node.output[1:] if o and o in self.read]
        if extra:
            raise self.error(f"extra outputs ({', '.join(extra)}) are not supported; only "
                             f"the first output (inference) is")
        getattr(self, f"_op_{op}")(node, index, attrs)

    # --- computations on constants --------------------------------------------------------

    def _fold(self, node: onnx.NodeProto) -> None:
        """Evaluate a node whose inputs are all constants (with onnx's reference
        implementation, at the model's opset); twice when an input depends on the batch."""
        values = {v: self.consts[self._resolve(v)] for v in node.input if v}
        outputs = self._evaluate(node, values)
        if any(self._resolve(v) in self.alternate for v in values):
            others = self._evaluate(node, {v: self.alternate.get(self._resolve(v), value)
                                           for v, value in values.items()})
        else:
            others = outputs
        for name, value, other in zip(node.output, outputs, others):
            if not name:
                continue
            self.consts[name] = value
            if other.shape != value.shape or not np.array_equal(other, value):
                self.alternate[name] = other

    def _evaluate(self, node: onnx.NodeProto, values: dict[str, np.ndarray]
                  ) -> list[np.ndarray]:
        from onnx.reference import ReferenceEvaluator

        anything = TensorProto.UNDEFINED
        graph = helper.make_graph(
            [node], "fold", [helper.make_tensor_value_info(v, anything, None) for v in values],
            [helper.make_tensor_value_info(o, anything, None) for o in node.output if o])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            outputs = ReferenceEvaluator(model).run(None, values)
        except Exception as e:
            raise self.error(f"cannot compute this operator on its constant inputs "
                             f"({_first_line(e)})") from None
        full = iter(np.asarray(o) for o in outputs)
        return [next(full) if o else np.zeros(0) for o in node.output]

    def _op_Shape(self, node, index, attrs) -> None:
        """The shape of a value: per-sample dimensions are known; a symbolic batch size is a
        stand-in, evaluated twice (see `_fold`)."""
        name = self._resolve(node.input[0])
        if name in self.consts:
            self._fold(node)
            return
        x = self._var(name)
        rank = len(self.shapes[x]) + 1
        values = []
        for batch in ((self.batch,) if self.batch else (_BATCH, _BATCH_ALT)):
            full = np.array((batch, *self.shapes[x]), np.int64)
            if node.op_type == "Size":
                values.append(np.array(math.prod(full), np.int64))
            else:
                start, end = attrs.get("start", 0), attrs.get("end", rank)
                values.append(full[slice(start, end)])
        self.consts[node.output[0]] = values[0]
        if len(values) > 1 and not np.array_equal(values[0], values[1]):
            self.alternate[node.output[0]] = values[1]

    _op_Size = _op_Shape

    def _op_Constant(self, node, index, attrs) -> None:
        if "value" in attrs:
            value = np.asarray(attrs["value"])
        elif "value_float" in attrs or "value_floats" in attrs:
            value = np.asarray(attrs.get("value_float", attrs.get("value_floats")), np.float32)
        elif "value_int" in attrs or "value_ints" in attrs:
            value = np.asarray(attrs.get("value_int", attrs.get("value_ints")), np.int64)
        else:
            raise self.error("only tensor, float and int values are supported")
        self.consts[node.output[0]] = value

    def _op_Identity(self, node, index, attrs) -> None:
        self.alias[node.output[0]] = self._var(node.input[0])

    def _op_Gemm(self, node, index, attrs) -> None:
        a, b, c = node.input[0], node.input[1], self._optional(node, 2)
        if self._is_const(a):
            raise self.error("a constant first operand (A) is not supported; the variable "
                             "must be A and the weights B")
        x = self._var(a, "operand A")
        if attrs.get("transA", 0):
            raise self.error("transA=1 on the variable operand is not supported (it would "
                             "mix the batch)")
        if not self._is_const(b):
            raise self.error("a variable second operand (B) is not supported; B must be a "
                             "constant weight matrix")
        weight = np.asarray(self._const(b, "operand B"), np.float64)
        if weight.ndim != 2:
            raise self.error(f"operand B must be a matrix, not of shape {weight.shape}")
        if not attrs.get("transB", 0):
            weight = weight.T  # now (out, in)
        shape = self.shapes[x]
        if len(shape) != 1 or shape[0] != weight.shape[1]:
            raise self.error(f"operand A of per-sample shape {shape} does not fit B "
                             f"(in = {weight.shape[1]})")
        out = weight.shape[0]
        bias = np.zeros(out)
        if c is not None:
            bias = np.asarray(self._const(c, "operand C"), np.float64)
            if bias.ndim == 2:
                if bias.shape[0] != 1:
                    raise self.error(f"operand C of shape {bias.shape} varies along the batch")
                bias = bias[0]
            try:
                bias = np.broadcast_to(bias, (out,))
            except ValueError:
                raise self.error(f"operand C of shape {bias.shape} does not broadcast to "
                                 f"({out},)") from None
            bias = attrs.get("beta", 1.0) * bias
        self._emit(Affine, node, index, (x,), (out,),
                   weight=attrs.get("alpha", 1.0) * weight, bias=bias)

    def _op_MatMul(self, node, index, attrs) -> None:
        a, b = node.input[0], node.input[1]
        if not self._is_const(a) and not self._is_const(b):
            raise self.error("MatMul of two variable values is not supported; one operand "
                             "must be a constant weight matrix")
        if self._is_const(a):
            raise self.error("a constant first operand (C @ x) is not supported; the "
                             "weights must be the second operand")
        x = self._var(a)
        weight = np.asarray(self._const(b, "the second operand"), np.float64)
        shape = self.shapes[x]
        if weight.ndim != 2:
            raise self.error(f"the constant operand must be a matrix, not of shape "
                             f"{weight.shape}")
        if shape[-1] != weight.shape[0]:
            raise self.error(f"the input of per-sample shape {shape} does not fit the "
                             f"matrix of shape {weight.shape}")
        self._emit(Affine, node, index, (x,), shape[:-1] + (weight.shape[1],),
                   weight=weight.T, bias=np.zeros(weight.shape[1]))

    def _binary(self, node, index, attrs) -> None:
        op = node.op_type
        a, b = node.input[0], node.input[1]
        if not self._is_const(a) and not self._is_const(b):
            left, right = self._var(a, "operand A"), self._var(b, "operand B")
            if op in ("Mul", "Div"):
                raise self.error(f"{op} of two variable values is not supported; one operand "
                                 f"must be a constant")
            if self.shapes[left] != self.shapes[right]:
                raise self.error(f"{op} of two variable values needs equal shapes, not "
                                 f"{self.shapes[left]} and {self.shapes[right]}")
            self._emit(Add, node, index, (left, right), self.shapes[left],
                       subtract=op == "Sub")
            return
        const_first = self._is_const(a)
        x = self._var(b if const_first else a)
        shape = self.shapes[x]
        c = self._per_sample(self._const(a if const_first else b, "the constant operand"),
                             shape)
        one, zero = np.ones(shape), np.zeros(shape)
        if op == "Add":
            scale, shift = one, c
        elif op == "Sub":
            scale, shift = (-one, c) if const_first else (one, -c)
        elif op == "Mul":
            scale, shift = c, zero
        elif const_first:
            raise self.error("division by a variable value is not supported")
        else:
            with np.errstate(divide="ignore"):
                scale, shift = 1.0 / c, zero
        self._emit(Elementwise, node, index, (x,), shape, scale=scale, shift=shift)

    _op_Add = _op_Sub = _op_Mul = _op_Div = _binary

    def _per_sample(self, constant: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The constant operand broadcast to the variable's per-sample shape."""
        c = np.asarray(constant, np.float64)
        rank = len(shape) + 1
        if c.ndim > rank:
            raise self.error(f"the constant of shape {c.shape} has more axes than the "
                             f"variable (batch, {', '.join(map(str, shape))})")
        if c.ndim == rank:
            if c.shape[0] != 1:
                raise self.error(f"the constant of shape {c.shape} varies along the batch "
                                 f"axis")
            c = c[0]
        try:
            full = np.broadcast_shapes(shape, c.shape)
        except ValueError:
            raise self.error(f"the constant of shape {c.shape} does not broadcast to the "
                             f"per-sample shape {shape}") from None
        if full != shape:
            raise self.error(f"the constant of shape {c.shape} would broadcast the variable "
                             f"of per-sample shape {shape} to {full}; not supported")
        return np.broadcast_to(c, shape).copy()

    def _op_Relu(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        self._emit(Relu, node, index, (x,), self.shapes[x])

    def _op_Sigmoid(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        self._emit(Sigmoid, node, index, (x,), self.shapes[x])

    def _op_Tanh(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        self._emit(Tanh, node, index, (x,), self.shapes[x])

    def _op_LeakyRelu(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        self._emit(LeakyRelu, node, index, (x,), self.shapes[x],
                   alpha=float(attrs.get("alpha", 0.01)))

    def _op_Clip(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        if self.opset < 11:
            low, high = attrs.get("min"), attrs.get("max")
        else:
            if "min" in attrs or "max" in attrs:
                raise self.error("min/max attributes are opset < 11; from opset 11 the "
                                 "bounds are inputs")
            low, high = [self._bound(self._optional(node, i), what)
                         for i, what in ((1, "min"), (2, "max"))]
        low = None if low is None or low == -math.inf else float(low)
        high = None if high is None or high == math.inf else float(high)
        self._emit(Clip, node, index, (x,), self.shapes[x], low=low, high=high)

    def _bound(self, name: str | None, what: str) -> float | None:
        if name is None:
            return None
        value = np.asarray(self._const(name, f"the {what} bound"))
        if value.size != 1:
            raise self.error(f"the {what} bound must be a scalar, not of shape {value.shape}")
        return float(value.reshape(()))

    def _op_Softmax(self, node, index, attrs) -> None:
        kind = LogSoftmax if node.op_type == "LogSoftmax" else Softmax
        x = self._var(node.input[0])
        shape = self.shapes[x]
        rank = len(shape) + 1
        axis = attrs.get("axis", -1 if self.opset >= 13 else 1)
        if not -rank <= axis < rank:
            raise self.error(f"axis {axis} is out of range for rank {rank}")
        axis %= rank
        if axis == 0:
            raise self.error("a softmax over the batch axis (axis 0) is not supported")
        if self.opset >= 13 or axis == rank - 1:
            self._emit(kind, node, index, (x,), shape, axis=axis - 1)
            return
        # opset < 13: softmax over the axes [axis, rank) flattened together
        flat = shape[:axis - 1] + (math.prod(shape[axis - 1:]),)
        out = node.output[0]
        inner = self._emit(Reshape, node, index, (x,), flat, output=f"{out}/flat")
        soft = self._emit(kind, node, index, (inner,), flat, axis=len(flat) - 1,
                          output=f"{out}/softmax")
        self._emit(Reshape, node, index, (soft,), shape)

    _op_LogSoftmax = _op_Softmax

    # --- operators that do not change the data ----------------------------------------------

    def _op_Dropout(self, node, index, attrs) -> None:
        if attrs.get("is_test", 1) == 0 and self.opset < 7:
            raise self.error("is_test=0 (training) is not supported")
        mode = self._optional(node, 2)
        if mode is not None and bool(np.asarray(self._const(mode, "training_mode")).any()):
            raise self.error("training_mode=true is not supported (inference only)")
        self.alias[node.output[0]] = self._var(node.input[0])

    def _op_Cast(self, node, index, attrs) -> None:
        to = attrs.get("to")
        if to not in _FLOAT_TYPES:
            name = TensorProto.DataType.Name(to) if isinstance(to, int) else str(to)
            raise self.error(f"a cast of the data to {name} is not supported (only to FLOAT "
                             f"or DOUBLE)")
        self.alias[node.output[0]] = self._var(node.input[0])

    def _axes(self, node, attrs, rank: int, what: str) -> list[int] | None:
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif self._optional(node, 1) is not None:
            axes = [int(a) for a in np.asarray(self._const(node.input[1], "axes")).reshape(-1)]
        else:
            return None
        if any(not -rank <= a < rank for a in axes):
            raise self.error(f"axes {axes} out of range for rank {rank}")
        axes = sorted({a % rank for a in axes})
        if 0 in axes:
            raise self.error(f"{what} the batch axis (axis 0) is not supported")
        return axes

    def _op_Squeeze(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        axes = self._axes(node, attrs, len(shape) + 1, "squeezing")
        if axes is None:
            raise self.error("Squeeze without axes is not supported (it would drop a batch "
                             "of one); give the axes")
        if any(shape[a - 1] != 1 for a in axes):
            raise self.error(f"cannot squeeze axes {axes} of per-sample shape {shape}")
        kept = tuple(d for i, d in enumerate(shape, start=1) if i not in axes)
        self._emit(Reshape, node, index, (x,), kept)

    def _op_Unsqueeze(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        count = len(attrs["axes"]) if "axes" in attrs else (
            np.asarray(self._const(node.input[1], "axes")).size
            if self._optional(node, 1) is not None else 0)
        axes = self._axes(node, attrs, len(shape) + 1 + count, "inserting")
        if not axes:
            raise self.error("Unsqueeze needs axes")
        rest = iter(shape)
        out = tuple(1 if i in axes else next(rest) for i in range(1, len(shape) + 1 + count))
        self._emit(Reshape, node, index, (x,), out)

    def _op_Transpose(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        full = (1, *shape)
        perm = [int(p) for p in attrs.get("perm", range(len(full) - 1, -1, -1))]
        if sorted(perm) != list(range(len(full))):
            raise self.error(f"perm {perm} is not a permutation of the {len(full)} axes")
        if perm[0] != 0:
            raise self.error(f"a transpose that moves the batch axis (perm {perm}) is not "
                             f"supported")
        moved = [p for p in perm if full[p] != 1]
        if moved != sorted(moved):
            raise self.error(f"a transpose with perm {perm} of per-sample shape {shape} "
                             f"reorders the data; only transposes that move axes of size 1 "
                             f"are supported (transpose the input outside the network, or "
                             f"fold it into the next layer's weights)")
        self._emit(Reshape, node, index, (x,), tuple(full[p] for p in perm[1:]))

    # --- global pooling ------------------------------------------------------------------

    def _op_GlobalAveragePool(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        if len(shape) != 3:
            raise self.error(f"only 2-D global pooling is supported (input (C, H, W)); got "
                             f"{shape}")
        fields = {"kernel": shape[1:], "strides": (1, 1), "pads": (0, 0, 0, 0)}
        if node.op_type == "GlobalMaxPool":
            self._emit(MaxPool, node, index, (x,), (shape[0], 1, 1), **fields)
        else:
            self._emit(AveragePool, node, index, (x,), (shape[0], 1, 1), **fields)

    _op_GlobalMaxPool = _op_GlobalAveragePool

    def _op_Flatten(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        rank = len(shape) + 1
        axis = attrs.get("axis", 1)
        if not -rank <= axis <= rank:
            raise self.error(f"axis {axis} is out of range for rank {rank}")
        axis = axis + rank if axis < 0 else axis
        if axis == 0 or math.prod(shape[:axis - 1]) != 1:
            raise self.error(f"Flatten with axis {attrs.get('axis', 1)} merges the batch "
                             f"dimension with others; not supported")
        self._emit(Reshape, node, index, (x,), (math.prod(shape[axis - 1:]),))

    def _op_Reshape(self, node, index, attrs) -> None:
        if "shape" in attrs:  # opset < 5
            target = [int(d) for d in attrs["shape"]]
        else:
            target = self._target_shape(node.input[1])
        allowzero = bool(attrs.get("allowzero", 0))
        if allowzero and 0 in target:
            raise self.error("allowzero=1 with a 0 in the shape is not supported")
        if target.count(-1) > 1 or any(d < -1 for d in target):
            raise self.error(f"invalid shape {target}")
        x = self._var(node.input[0])
        self._emit(Reshape, node, index, (x,), self._reshaped(self.shapes[x], target))

    def _target_shape(self, name: str) -> list[int]:
        """A Reshape's target; a first entry that is the batch size (x.size(0)) becomes 0."""
        resolved = self._resolve(name)
        other = self.alternate.pop(resolved, None)
        try:
            value = np.asarray(self._const(name, "the shape")).reshape(-1)
        finally:
            if other is not None:
                self.alternate[resolved] = other
        target = [int(d) for d in value]
        if other is None:
            return target
        other = np.asarray(other).reshape(-1)
        differ = [] if other.shape != value.shape else np.flatnonzero(other != value).tolist()
        if differ != [0] or (value[0], other[0]) != (_BATCH, _BATCH_ALT):
            raise self.error("the target shape depends on the batch size other than as its "
                             "first entry; reshape with the batch size first, as "
                             "x.view(x.size(0), -1) or nn.Flatten() do")
        return [0] + target[1:]

    def _reshaped(self, shape: tuple[int, ...], target: list[int]) -> tuple[int, ...]:
        size = math.prod(shape)
        wanted = f"({', '.join(map(str, target))})"
        if not target:
            raise self.error("a reshape to a scalar is not supported")
        rest = []
        for i, d in enumerate(target[1:], start=1):
            if d == 0 and i > len(shape):
                raise self.error(f"shape {wanted} copies axis {i}, beyond the input's rank")
            rest.append(shape[i - 1] if d == 0 else d)
        first = target[0]
        if first == -1:
            if math.prod(rest) != size:
                raise self.error(f"a reshape of per-sample shape {shape} to {wanted} would "
                                 f"mix samples of the batch")
        elif first == 0 or (first == 1 and self.batch == 1):
            if -1 in rest:
                known = math.prod(d for d in rest if d != -1)
                if known == 0 or size % known:
                    raise self.error(f"cannot reshape per-sample shape {shape} to {wanted}")
                rest[rest.index(-1)] = size // known
        else:
            raise self.error(f"the shape {wanted} must keep the batch dimension (0 or -1 "
                             f"first)")
        if math.prod(rest) != size:
            raise self.error(f"cannot reshape per-sample shape {shape} to {wanted}")
        return tuple(rest)

    def _op_BatchNormalization(self, node, index, attrs) -> None:
        if attrs.get("training_mode", 0):
            raise self.error("training_mode=1 is not supported (inference only)")
        if not attrs.get("spatial", 1):
            raise self.error("spatial=0 is not supported")
        x = self._var(node.input[0])
        shape = self.shapes[x]
        scale, bias, mean, var = [np.asarray(self._const(node.input[i], what), np.float64)
                                  for i, what in ((1, "scale"), (2, "bias"), (3, "mean"),
                                                  (4, "var"))]
        if any(a.shape != (shape[0],) for a in (scale, bias, mean, var)):
            raise self.error(f"scale, bias, mean and var must have shape ({shape[0]},), one "
                             f"value per channel")
        self._emit(BatchNorm, node, index, (x,), shape, scale=scale, bias=bias, mean=mean,
                   var=var, epsilon=float(attrs.get("epsilon", 1e-5)))

    def _op_Conv(self, node, index, attrs) -> None:
        x = self._var(node.input[0])
        weight = np.asarray(self._const(node.input[1], "the weight"), np.float64)
        shape = self.shapes[x]
        if weight.ndim != 4 or len(shape) != 3:
            raise self.error(f"only 2-D convolutions are supported (input (C, H, W), weight "
                             f"(C_out, C_in, kH, kW)); got input {shape}, weight "
                             f"{weight.shape}")
        group = int(attrs.get("group", 1))
        if shape[0] != weight.shape[1] * group or weight.shape[0] % group:
            raise self.error(f"weight {weight.shape} with group {group} does not fit "
                             f"{shape[0]} input channels")
        kernel = tuple(weight.shape[2:])
        if "kernel_shape" in attrs and tuple(attrs["kernel_shape"]) != kernel:
            raise self.error(f"kernel_shape {tuple(attrs['kernel_shape'])} differs from the "
                             f"weight's {kernel}")
        bias_name = self._optional(node, 2)
        bias = (np.zeros(weight.shape[0]) if bias_name is None
                else np.asarray(self._const(bias_name, "the bias"), np.float64))
        if bias.shape != (weight.shape[0],):
            raise self.error(f"the bias must have shape ({weight.shape[0]},)")
        strides, dilations, pads, out = self._window(attrs, shape, kernel)
        self._emit(Conv, node, index, (x,), (weight.shape[0],) + out, weight=weight,
                   bias=bias, strides=strides, pads=pads, dilations=dilations, group=group)

    def _pool(self, node, index, attrs) -> tuple[str, dict[str, Any]]:
        x = self._var(node.input[0])
        shape = self.shapes[x]
        kernel = tuple(int(k) for k in attrs.get("kernel_shape", ()))
        if len(kernel) != 2 or len(shape) != 3:
            raise self.error(f"only 2-D pooling is supported (input (C, H, W), a 2-D "
                             f"kernel); got input {shape}, kernel {kernel}")
        if attrs.get("ceil_mode", 0):
            raise self.error("ceil_mode=1 is not supported")
        strides, dilations, pads, out = self._window(attrs, shape, kernel)
        return x, {"shape": (shape[0], *out), "kernel": kernel, "strides": strides,
                   "pads": pads, "dilations": dilations}

    def _op_MaxPool(self, node, index, attrs) -> None:
        x, fields = self._pool(node, index, attrs)
        self._emit(MaxPool, node, index, (x,), **fields)

    def _op_AveragePool(self, node, index, attrs) -> None:
        x, fields = self._pool(node, index, attrs)
        if fields.pop("dilations") != (1, 1):
            raise self.error("dilations other than 1 are not supported")
        self._emit(AveragePool, node, index, (x,), **fields,
                   count_include_pad=bool(attrs.get("count_include_pad", 0)))

    def _window(self, attrs: dict[str, Any], shape: tuple[int, ...], kernel: tuple[int, ...]
                ) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int],
                           tuple[int, int]]:
        """Strides, dilations, explicit pads (top, left, bottom, right) and the output
        (H, W) of a 2-D window over (C, H, W)."""
        strides = tuple(int(s) for s in attrs.get("strides", (1, 1)))
        dilations = tuple(int(d) for d in attrs.get("dilations", (1, 1)))
        if len(strides) != 2 or len(dilations) != 2 or min(strides + dilations) < 1:
            raise self.error(f"strides {strides} and dilations {dilations} must be two "
                             f"positive numbers each")
        size = shape[1:]
        auto_pad = attrs.get("auto_pad", "NOTSET")
        if auto_pad == "NOTSET":
            pads = tuple(int(p) for p in attrs.get("pads", (0, 0, 0, 0)))
            if len(pads) != 4 or min(pads) < 0:
                raise self.error(f"pads {pads} must be four non-negative numbers")
        elif auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            begin, end = [], []
            for n, k, s, d in zip(size, kernel, strides, dilations, strict=True):
                total = max(0, (-(-n // s) - 1) * s + (k - 1) * d + 1 - n)
                small = total // 2
                begin.append(small if auto_pad == "SAME_UPPER" else total - small)
                end.append(total - begin[-1])
            pads = tuple(begin + end)
        else:
            raise self.error(f"auto_pad '{auto_pad}' is not supported")
        out = tuple((n + pads[i] + pads[i + 2] - d * (k - 1) - 1) // s + 1
                    for i, (n, k, s, d) in enumerate(zip(size, kernel, strides,
                                                                 dilations, strict=True)))
        if min(out) < 1:
            raise self.error(f"the window {kernel} does not fit the input {shape}")
        return strides, dilations, pads, out  # type: ignore[return-value]


def _fold_batchnorm(nodes: list[Node], output: str) -> list[Node]:
    """Fold each BatchNorm into the Conv or Affine (on features) it reads when nothing else
    reads that, or into the Affine (on features) that alone reads it; the others stay."""
    uses = Counter(v for node in nodes for v in node.inputs)
    uses[output] += 1
    producer: dict[str, Node] = {}
    result: list[Node] = []
    for node in nodes:
        prev = producer.get(node.inputs[0])
        if isinstance(node, BatchNorm) and uses[node.inputs[0]] == 1 and (
                isinstance(prev, Conv) or (isinstance(prev, Affine) and len(prev.shape) == 1)):
            a, b = node.scale_shift()
            names = {"name": f"{prev.name}+{node.name}",
                     "op_type": f"{prev.op_type}+{node.op_type}", "inputs": prev.inputs,
                     "output": node.output, "shape": node.shape}
            result.remove(prev)
            if isinstance(prev, Conv):
                node = Conv(**names, weight=prev.weight * a[:, None, None, None],
                            bias=a * prev.bias + b, strides=prev.strides, pads=prev.pads,
                            dilations=prev.dilations, group=prev.group)
            else:
                node = Affine(**names, weight=a[:, None] * prev.weight, bias=a * prev.bias + b)
        elif (isinstance(node, Affine) and isinstance(prev, BatchNorm) and len(prev.shape) == 1
              and uses[prev.output] == 1):
            a, b = prev.scale_shift()
            result.remove(prev)
            node = Affine(name=f"{prev.name}+{node.name}",
                          op_type=f"{prev.op_type}+{node.op_type}", inputs=prev.inputs,
                          output=node.output, shape=node.shape, weight=node.weight * a,
                          bias=node.bias + node.weight @ b)
        producer[node.output] = node
        result.append(node)
    return result


def _fold_elementwise(nodes: list[Node], output: str) -> list[Node]:
    """Fold each Elementwise into the Affine or Elementwise it reads when nothing else reads
    that (MatMul + Add is one linear layer, (x - mean) / std one Elementwise); into an Affine
    only when it is constant along all but the last axis."""
    uses = Counter(v for node in nodes for v in node.inputs)
    uses[output] += 1
    producer: dict[str, Node] = {}
    result: list[Node] = []
    for node in nodes:
        prev = producer.get(node.inputs[0]) if isinstance(node, Elementwise) else None
        if isinstance(node, Elementwise) and prev is not None and uses[prev.output] == 1:
            names = {"name": f"{prev.name}+{node.name}",
                     "op_type": f"{prev.op_type}+{node.op_type}", "inputs": prev.inputs,
                     "output": node.output, "shape": node.shape}
            if isinstance(prev, Elementwise):
                result.remove(prev)
                node = Elementwise(**names, scale=prev.scale * node.scale,
                                   shift=prev.shift * node.scale + node.shift)
            elif isinstance(prev, Affine):
                n = prev.out_features
                scale, shift = node.scale.reshape(-1, n), node.shift.reshape(-1, n)
                if (scale == scale[0]).all() and (shift == shift[0]).all():
                    result.remove(prev)
                    node = Affine(**names, weight=scale[0][:, None] * prev.weight,
                                  bias=scale[0] * prev.bias + shift[0])
        producer[node.output] = node
        result.append(node)
    return result
