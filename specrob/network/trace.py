"""A live torch module -> the network IR whose Affine and Conv weights ARE the module's
parameters (the same tensors, not copies): bound propagation over it (`specrob.bounds`) is
differentiable in the weights, which is what certified training needs (IBP, CROWN-IBP).

The module is traced with torch.fx (`symbolic_trace`; custom modules are traced through, so a
user's `Clamp` module or `x.view(x.size(0), -1)` need nothing special) and its per-sample shapes
are found by running it once on two zero samples (`ShapeProp`). What is read:

    nn.Linear, F.linear                        -> Affine (live weight and bias)
    nn.Conv2d (zero padding)                   -> Conv (live weight and bias)
    nn.ReLU, F.relu, torch.relu, x.relu()      -> Relu
    nn.LeakyReLU, F.leaky_relu                 -> LeakyRelu
    nn.Hardtanh, nn.ReLU6, torch.clamp/clip, x.clamp(...) with constant bounds -> Clip
    nn.Sigmoid, nn.Tanh (and their functions)  -> Sigmoid, Tanh
    nn.MaxPool2d, nn.AvgPool2d                 -> MaxPool, AveragePool
    nn.Flatten, nn.Unflatten, flatten, view, reshape, squeeze, unsqueeze -> Reshape
    nn.Identity, nn.Dropout, contiguous, size  -> nothing (aliases and shape arithmetic)
    + - * / by constants (numbers or buffers)  -> Elementwise;  a + b, a - b -> Add

Anything else (batch norm, data-dependent control flow, trained elementwise parameters) raises
`TraceError` naming the node and saying what is supported. The ONNX route (`load_onnx`) stays
the one for verification: it reads what the file computes, in float64 copies.
"""
from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from specrob.network.ir import (Add, Affine, AveragePool, Clip, Conv, Elementwise, LeakyRelu,
                                MaxPool, Network, NetworkError, Node, Relu, Reshape, Sigmoid,
                                Tanh)

__all__ = ["TraceError", "trace_module"]

SUPPORTED_TEXT = ("Linear, Conv2d (zero padding), ReLU, LeakyReLU, Hardtanh/ReLU6/clamp, "
                  "Sigmoid, Tanh, MaxPool2d, AvgPool2d, Flatten/view/reshape, Identity, "
                  "Dropout, and + - * / by constants")


class TraceError(NetworkError):
    """A module whose computation cannot be read as the network IR for bound propagation."""


_RELU = {F.relu, torch.relu, "relu"}
_SIGMOID = {torch.sigmoid, F.sigmoid, "sigmoid"}
_TANH = {torch.tanh, F.tanh, "tanh"}
_CLAMP = {torch.clamp, torch.clip, "clamp", "clip"}
_RESHAPE = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, "view", "reshape",
            "flatten", "squeeze", "unsqueeze"}
_ALIAS = {"contiguous", F.dropout, "float"}
_SHAPE = {"size", "dim", getattr, operator.getitem, len}  # shape arithmetic: no value
_ADD = {operator.add, torch.add, "add", operator.iadd}
_SUB = {operator.sub, torch.sub, "sub", operator.isub}
_MUL = {operator.mul, torch.mul, "mul", operator.imul}
_DIV = {operator.truediv, torch.div, "div", operator.itruediv}
_NEG = {operator.neg, torch.neg, "neg"}


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


class _Tracer:
    def __init__(self, module: nn.Module, input_shape: tuple[int, ...], source: str):
        self.module, self.source = module, source
        self.input_shape = tuple(int(d) for d in input_shape)
        for name, sub in module.named_modules():
            if isinstance(sub, nn.modules.batchnorm._BatchNorm):
                raise TraceError(f"{source}: module '{name}' is {type(sub).__name__}: batch "
                                 f"norm changes with the batch in training, so certified "
                                 f"training does not bound it; remove it or train with "
                                 f"--regime constraint / adversarial")
        try:
            self.gm = torch.fx.symbolic_trace(module)
        except Exception as exc:  # fx raises many kinds (TraceError, TypeError, ...)
            raise TraceError(f"{source}: torch.fx cannot trace the model's forward "
                             f"({type(exc).__name__}: {exc}); certified training needs a forward "
                             f"pass without data-dependent control flow") from None
        param = next(iter(module.parameters()), None)
        example = torch.zeros((2, *self.input_shape),
                              dtype=param.dtype if param is not None else torch.float32,
                              device=param.device if param is not None else "cpu")
        was_training = module.training
        try:
            with torch.no_grad():
                self.gm.eval()
                ShapeProp(self.gm).propagate(example)
        except Exception as exc:
            raise TraceError(f"{source}: the model does not run on inputs of shape "
                             f"(B, {', '.join(map(str, self.input_shape))}) "
                             f"({type(exc).__name__}: {exc})") from None
        finally:
            self.gm.train(was_training)
        self.nodes: list[Node] = []
        self.shapes: dict[str, tuple[int, ...]] = {"input": self.input_shape}  # per IR value
        self.values: dict[str, Any] = {}  # fx node name -> ("value", ir name) | ("const", x)

    # --- helpers -------------------------------------------------------------------------
    def fail(self, n: torch.fx.Node, what: str) -> TraceError:
        return TraceError(f"{self.source}: node '{n.name}' ({what}) cannot be bounded; "
                          f"certified training reads {SUPPORTED_TEXT}")

    def shape(self, n: torch.fx.Node) -> tuple[int, ...]:
        meta = n.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise self.fail(n, "its output is not one tensor")
        shape = tuple(int(d) for d in meta.shape)
        if not shape or shape[0] != 2:
            raise self.fail(n, f"it mixes the batch axis into shape {shape}")
        return shape[1:]

    def read(self, arg: Any) -> tuple[str, Any]:
        if isinstance(arg, torch.fx.Node):
            return self.values[arg.name]
        return ("const", arg)

    def var(self, n: torch.fx.Node, arg: Any) -> str:
        kind, value = self.read(arg)
        if kind != "value":
            raise self.fail(n, "an operation on constants only")
        return value

    def emit(self, cls, n: torch.fx.Node, inputs: list[str], **fields) -> None:
        if n.op == "call_module":
            op_type = type(self.gm.get_submodule(str(n.target))).__name__
        else:
            op_type = getattr(n.target, "__name__", str(n.target))
        node = cls(name=n.name, op_type=op_type, inputs=tuple(inputs), output=n.name,
                   shape=self.shape(n), **fields)
        self.nodes.append(node)
        self.shapes[n.name] = tuple(node.shape)
        self.values[n.name] = ("value", n.name)

    def alias(self, n: torch.fx.Node, arg: Any) -> None:
        self.values[n.name] = self.read(arg)

    def number(self, n: torch.fx.Node, value: Any) -> float:
        """A constant argument that must be a number (a clamp bound, a slope)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(n, f"an argument {value!r} that is not a number")
        return float(value)

    def constant(self, n: torch.fx.Node, value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            if value.requires_grad:
                raise self.fail(n, "an elementwise operation with a trained parameter")
            return value.detach().cpu().double().numpy()
        if isinstance(value, (int, float)):
            return np.asarray(float(value))
        raise self.fail(n, f"an operation with a constant of type {type(value).__name__}")

    def elementwise(self, n: torch.fx.Node, x: str, scale, shift) -> None:
        shape = self.shape(n)
        full = lambda a: np.array(np.broadcast_to(a, (1, *shape))[0])  # noqa: E731
        self.emit(Elementwise, n, [x], scale=full(scale), shift=full(shift))

    # --- the walk ------------------------------------------------------------------------
    def run(self) -> Network:
        output = None
        for n in self.gm.graph.nodes:
            if n.op == "placeholder":
                if self.values:
                    raise self.fail(n, "a second input")
                self.values[n.name] = ("value", "input")
            elif n.op == "get_attr":
                value = self.gm
                for part in str(n.target).split("."):
                    value = getattr(value, part)
                self.values[n.name] = ("const", value)
            elif n.op == "call_module":
                self.module_node(n, self.gm.get_submodule(str(n.target)))
            elif n.op in ("call_function", "call_method"):
                self.function_node(n)
            elif n.op == "output":
                output = n.args[0]
        if not isinstance(output, torch.fx.Node) or self.read(output)[0] != "value":
            raise TraceError(f"{self.source}: the model's forward must return one tensor")
        out_name = self.read(output)[1]
        if out_name == "input":
            raise TraceError(f"{self.source}: the model returns its input unchanged")
        return Network("input", self.input_shape, out_name, tuple(self.nodes),
                       source=f"{self.source} (traced)")

    def module_node(self, n: torch.fx.Node, mod: nn.Module) -> None:
        x = n.args[0] if n.args else None
        if isinstance(mod, nn.Linear):
            bias = mod.bias if mod.bias is not None else torch.zeros_like(mod.weight[:, 0])
            self.emit(Affine, n, [self.var(n, x)], weight=mod.weight, bias=bias)
        elif isinstance(mod, nn.Conv2d):
            if mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                if mod.padding != "valid":
                    raise self.fail(n, f"Conv2d with padding {mod.padding!r} / "
                                       f"{mod.padding_mode!r}")
            ph, pw = (0, 0) if isinstance(mod.padding, str) else _pair(mod.padding)
            bias = mod.bias if mod.bias is not None else torch.zeros_like(mod.weight[:, 0, 0, 0])
            self.emit(Conv, n, [self.var(n, x)], weight=mod.weight, bias=bias,
                      strides=_pair(mod.stride), pads=(ph, pw, ph, pw),
                      dilations=_pair(mod.dilation), group=int(mod.groups))
        elif isinstance(mod, nn.ReLU):
            self.emit(Relu, n, [self.var(n, x)])
        elif isinstance(mod, nn.LeakyReLU):
            self.emit(LeakyRelu, n, [self.var(n, x)], alpha=float(mod.negative_slope))
        elif isinstance(mod, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
            self.emit(Clip, n, [self.var(n, x)], low=float(mod.min_val), high=float(mod.max_val))
        elif isinstance(mod, nn.Sigmoid):
            self.emit(Sigmoid, n, [self.var(n, x)])
        elif isinstance(mod, nn.Tanh):
            self.emit(Tanh, n, [self.var(n, x)])
        elif isinstance(mod, (nn.Flatten, nn.Unflatten)):
            self.reshape(n, x)
        elif isinstance(mod, (nn.Identity, nn.Dropout, nn.Dropout2d)):
            self.alias(n, x)
        elif isinstance(mod, nn.MaxPool2d):
            if mod.ceil_mode:
                raise self.fail(n, "MaxPool2d with ceil_mode")
            ph, pw = _pair(mod.padding)
            self.emit(MaxPool, n, [self.var(n, x)], kernel=_pair(mod.kernel_size),
                      strides=_pair(mod.stride), pads=(ph, pw, ph, pw),
                      dilations=_pair(mod.dilation))
        elif isinstance(mod, nn.AvgPool2d):
            if mod.ceil_mode or mod.divisor_override is not None:
                raise self.fail(n, "AvgPool2d with ceil_mode or divisor_override")
            ph, pw = _pair(mod.padding)
            self.emit(AveragePool, n, [self.var(n, x)], kernel=_pair(mod.kernel_size),
                      strides=_pair(mod.stride), pads=(ph, pw, ph, pw),
                      count_include_pad=bool(mod.count_include_pad))
        else:
            raise self.fail(n, f"module {type(mod).__name__}")

    def shape_of(self, value: str) -> tuple[int, ...]:
        """The per-sample shape of an IR value (the input or a node's output)."""
        return self.shapes[value]

    def reshape(self, n: torch.fx.Node, x: Any) -> None:
        source = self.var(n, x)
        if self.shape(n) == self.shape_of(source):
            self.alias(n, x)
        else:
            self.emit(Reshape, n, [source])

    def function_node(self, n: torch.fx.Node) -> None:
        f = n.target if n.op == "call_function" else str(n.target)
        args, kwargs = list(n.args), dict(n.kwargs)
        if f is operator.getitem and args and self.read(args[0])[0] == "value":
            raise self.fail(n, "indexing or slicing a value that changes with x (x[...])")
        if f in _SHAPE:
            self.values[n.name] = ("shape", None)
        elif f in _ALIAS:
            self.alias(n, args[0])
        elif f in _RELU:
            self.emit(Relu, n, [self.var(n, args[0])])
        elif f in _SIGMOID:
            self.emit(Sigmoid, n, [self.var(n, args[0])])
        elif f in _TANH:
            self.emit(Tanh, n, [self.var(n, args[0])])
        elif f is F.leaky_relu:
            slope = args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)
            self.emit(LeakyRelu, n, [self.var(n, args[0])], alpha=self.number(n, slope))
        elif f in _CLAMP or f is F.hardtanh:
            low = args[1] if len(args) > 1 else kwargs.get("min", kwargs.get("min_val"))
            high = args[2] if len(args) > 2 else kwargs.get("max", kwargs.get("max_val"))
            if f is F.hardtanh:
                low = -1.0 if low is None else low
                high = 1.0 if high is None else high
            self.emit(Clip, n, [self.var(n, args[0])],
                      low=None if low is None else self.number(n, low),
                      high=None if high is None else self.number(n, high))
        elif f in _RESHAPE:
            self.reshape(n, args[0])
        elif f is F.linear:
            weight = self.read(args[1])[1]
            bias = self.read(args[2])[1] if len(args) > 2 else kwargs.get("bias")
            if isinstance(bias, torch.fx.Node):
                bias = self.read(bias)[1]
            if not isinstance(weight, torch.Tensor):
                raise self.fail(n, "F.linear with a computed weight")
            bias = torch.zeros_like(weight[:, 0]) if bias is None else bias
            self.emit(Affine, n, [self.var(n, args[0])], weight=weight, bias=bias)
        elif f in _NEG:
            x = self.var(n, args[0])
            self.elementwise(n, x, -1.0, 0.0)
        elif f in _ADD | _SUB | _MUL | _DIV:
            self.arithmetic(n, f, args, kwargs)
        else:
            name = getattr(f, "__name__", str(f))
            raise self.fail(n, f"{n.op} {name}")

    def arithmetic(self, n: torch.fx.Node, f, args: list, kwargs: dict) -> None:
        if "alpha" in kwargs or len(args) != 2:
            raise self.fail(n, "arithmetic with extra arguments")
        (ka, a), (kb, b) = self.read(args[0]), self.read(args[1])
        if ka == "value" and kb == "value":
            if (f in _ADD or f in _SUB) and self.shape_of(a) == self.shape_of(b):
                self.emit(Add, n, [a, b], subtract=f in _SUB)
                return
            if f in _ADD or f in _SUB:
                raise self.fail(n, f"a sum of two values of shapes {self.shape_of(a)} and "
                                   f"{self.shape_of(b)} (broadcasting)")
            raise self.fail(n, "a product or quotient of two values that change with x")
        if ka != "value" and kb != "value":
            if "shape" in (ka, kb):
                self.values[n.name] = ("shape", None)
                return
            raise self.fail(n, "arithmetic on constants only")
        left = ka == "value"
        x = a if left else b
        c = self.constant(n, b if left else a)
        if f in _ADD:
            self.elementwise(n, x, 1.0, c)
        elif f in _SUB:
            self.elementwise(n, x, 1.0, -c) if left else self.elementwise(n, x, -1.0, c)
        elif f in _MUL:
            self.elementwise(n, x, c, 0.0)
        elif left:  # x / c
            if np.any(c == 0):
                raise self.fail(n, "a division by zero")
            self.elementwise(n, x, 1.0 / c, 0.0)
        else:
            raise self.fail(n, "a constant divided by a value that changes with x")


def trace_module(module: nn.Module, input_shape: tuple[int, ...], *,
                 source: str = "model") -> Network:
    """The network IR of `module` for inputs of per-sample shape `input_shape` (specrob's
    models read flat samples: (n,)), with the module's own parameter tensors as the Affine and
    Conv weights. The IR's shapes are per sample, as `load_onnx`'s.

    Raises TraceError (a NetworkError) naming the node that cannot be read, and why."""
    if not math.prod(input_shape) > 0:
        raise TraceError(f"{source}: input shape {tuple(input_shape)} is empty")
    return _Tracer(module, tuple(input_shape), source).run()
