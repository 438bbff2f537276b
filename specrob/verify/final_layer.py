"""A final Softmax or LogSoftmax: stripped where the property does not see it.

Both are strictly monotone per pair of coordinates: z_i > z_j iff softmax(z)_i > softmax(z)_j
(and the same for log-softmax, and for >=, <, <=, ==, !=). A property whose atoms only compare
two outputs of f(x) order-wise (CR's margins `f(x)[y] > f(x)[j]`, a targeted `argmax(f(x)) ==
k`, ...) therefore has the same truth value on the logits as on the probabilities. Then

- attacks search on the logits (a saturated softmax has vanishing gradients in float32, and
  attacks through it miss violations) and every candidate is still re-checked on the real
  model: its argmax, hence the property, is the same;
- bound propagation and Marabou work on the network without its final layer (CROWN has no
  linear relaxation of softmax, Marabou none at all), and a proof there is a proof of the
  property on the real network (real arithmetic, as every verdict of specrob).

Log-softmax subtracts the same number from every logit, log_softmax(z) = z - lse(z) 1, so for
a query every linear form whose output coefficients sum to zero is unchanged by it, which
includes the pairwise comparisons (with any constant).

Whether the property allows it is decided from its IR (for attacks: `order_only`) or from one
centre's query (for bounds and Marabou: `query_order_only`), never from its name; where it does
not (SR on probabilities needs their values), the final layer stays and the reason says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specrob.lang import ir
from specrob.network.ir import LogSoftmax, Network, Reshape, Softmax
from specrob.lang import query as q

MONOTONE = (Softmax, LogSoftmax)


@dataclass(frozen=True, eq=False)
class FinalLayer:
    """The final monotone node of a network and the network without it (`logits`)."""

    kind: str  # "Softmax" | "LogSoftmax"
    name: str
    logits: Network

    def stripped_note(self, what: str = "the property") -> str:
        return (f"final {self.kind} stripped: {what} compares outputs of f(x) order-wise only "
                f"(argmax / margins), which {self.kind.lower()} preserves")

    def kept_reason(self) -> str:
        return (f"final {self.kind} kept: the property needs the {self.kind.lower()}'s values "
                f"(it does not only compare outputs of f(x) pairwise), so bounds use intervals "
                f"through it and Marabou cannot encode it")


def final_monotone(net: Network) -> FinalLayer | None:
    """The network's final Softmax / LogSoftmax over all its outputs (possibly followed by
    Reshapes, e.g. opset < 13's flattening softmax), and the network computing its input;
    None when the network does not end in one."""
    producer = {node.output: node for node in net.nodes}
    value = net.output_name
    while value in producer and isinstance(producer[value], Reshape):
        value = producer[value].inputs[0]
    node = producer.get(value)
    if not isinstance(node, MONOTONE):
        return None
    shape = tuple(node.shape)
    if not shape or shape[node.axis] != math.prod(shape):
        return None  # a softmax per row of a matrix is not monotone across rows
    logits = node.inputs[0]
    live, keep = {logits}, []
    for n in reversed(net.nodes):
        if n.output in live:
            keep.append(n)
            live.update(n.inputs)
    return FinalLayer(type(node).__name__, node.name,
                      Network(net.input_name, tuple(net.input_shape), logits,
                              tuple(reversed(keep)),
                              source=f"{net.source} without its final {type(node).__name__}",
                              batch=net.batch, dtype=net.dtype))


def logits_module(model):
    """(the torch module computing the logits, FinalLayer-like kind) for a model that ends in
    a softmax over its outputs: an imported ONNX network (TorchNetwork) or an nn.Sequential
    whose last module is nn.Softmax / nn.LogSoftmax over the class axis; else (None, None)."""
    from torch import nn

    from specrob.network.torch_exec import TorchNetwork, to_torch
    if isinstance(model, TorchNetwork):
        final = final_monotone(model.network)
        if final is None:
            return None, None
        module = to_torch(final.logits)
        probe = next(iter(model.buffers()), None)
        if probe is not None:
            module = module.to(device=probe.device, dtype=probe.dtype)
        return module, final.kind
    if isinstance(model, nn.Sequential) and len(model) > 1 and \
            isinstance(model[-1], (nn.Softmax, nn.LogSoftmax)) and model[-1].dim in (1, -1):
        return model[:-1], type(model[-1]).__name__
    return None, None


# --- does the property see the final layer? --------------------------------------------------

def _is_coordinate(t) -> bool:
    """f(x)[i], or max/min of such coordinates (all of the same vector f(x))."""
    if isinstance(t, ir.Index):
        return t.vector == ir.Net(False)
    if isinstance(t, ir.Reduce):
        return _is_coordinate(t.body)
    if isinstance(t, ir.Extremum):
        return all(_is_coordinate(i) for i in t.items)
    return False


def order_only(body: ir.Formula) -> bool:
    """Does every atom of the body compare two outputs of f(x) order-wise (`f(x)[i] op
    f(x)[j]`, `f(x)[i] - f(x)[j] op 0`, or max/min of outputs of f(x) on either side)? Then
    the body has the same truth value on f and on any per-pair monotone map of f."""
    if isinstance(body, ir.Compare):
        left, right = body.left, body.right
        if _is_coordinate(left) and _is_coordinate(right):
            return True
        for a, b in ((left, right), (right, left)):
            if b == ir.Const(0.0) and isinstance(a, ir.Arith) and a.op == "-" and \
                    _is_coordinate(a.left) and _is_coordinate(a.right):
                return True
        return False
    if isinstance(body, (ir.IndexCompare, ir.Truth)):
        return True
    if isinstance(body, (ir.And, ir.Or)):
        return all(order_only(i) for i in body.items)
    if isinstance(body, ir.IndexQuant):
        return order_only(body.body)
    return False


def _row_ok(out: np.ndarray, const: float, kind: str) -> bool:
    if kind == "LogSoftmax":
        return bool(out.sum() == 0)  # c . (z - lse 1) = c . z
    nz = np.flatnonzero(out)
    if len(nz) == 0:
        return True  # no output at all: a constant atom
    return bool(len(nz) == 2 and out[nz[0]] == -out[nz[1]] and const == 0)


def query_order_only(body: q.Formula, kind: str) -> bool:
    """Is the query's body unchanged when its outputs z go through the final `kind`? For
    Softmax: every atom is c (z_i - z_j) op 0 (no inputs, no norms, constant 0). For
    LogSoftmax: every output row of every atom (its linear part and its norms' vectors) sums
    to zero."""
    if isinstance(body, q.Const):
        return True
    if isinstance(body, (q.And, q.Or)):
        return all(query_order_only(i, kind) for i in body.items)
    if kind == "LogSoftmax":
        return _row_ok(body.lin.out[0], 0.0, kind) and all(
            all(_row_ok(r, 0.0, kind) for r in t.vec.out) for t in body.norms)
    return (not body.norms and not body.lin.uses_inputs()
            and _row_ok(body.lin.out[0], float(body.lin.const[0]), kind))
