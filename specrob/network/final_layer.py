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

Whether the property allows it is decided from its IR (for attacks: `lang.walk.order_only`) or
from one centre's query (for bounds and Marabou: `lang.query.query_order_only`), never from its
name; where it does
not (SR on probabilities needs their values), the final layer stays and the reason says why.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from specrob.network.ir import LogSoftmax, Network, Reshape, Softmax

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
