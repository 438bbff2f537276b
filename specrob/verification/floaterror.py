"""A sound bound on how far a float32 execution of the network (onnxruntime, torch) can be from
the network in exact arithmetic, over an input region: the error margin that `verify`'s default
semantics adds to every proof (issue: "verified" for a model that, as deployed, violates the
property; shared case bughunt/21).

The model, per IR node, with u = 2^-24 (float32's unit roundoff) and gamma(k) = k u / (1 - k u)
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., Thm. 3.1 / Lemma 3.1: a
dot product of length k in any summation order, FMA or not, errs by at most
gamma(k) sum |w_i x_i|), for a value with exact interval [l, u] (from IBP), magnitude
M = max(|l|, |u|), and error bound e of its input:

- Affine / Conv (k terms per output, the bias counted as one): |W| e + gamma(k + r) (|W| M + |b|)
- Elementwise / BatchNorm (x * a + b): |a| e + gamma(r + 1) (|a| M + |b|)
- Add: e_left + e_right + u (M_left + M_right)
- AveragePool (k terms, then a division): (e summed) / k + gamma(k + 1) M
- Relu, LeakyRelu (slope <= 1 in magnitude, else times it), Clip, MaxPool, Reshape: exact
  operations, 1-Lipschitz: e passes through (LeakyRelu: max(1, |alpha|) e)
- Sigmoid, Tanh (Lipschitz 1/4, 1): L e + 4 u (a few ulps for the library's function)

plus 2^-126 per operation for flushed subnormals. r counts the extra ONNX operations folded into
one IR node (`MatMul+Add+Div` is r = 2): a folded chain is bounded with the folded weights,
which assumes the chain does not cancel large intermediate values (true of the usual
normalisations (x - mean) / std; a chain such as (x * 1e6 - 1e6) / 1e6 is not covered).
Softmax and LogSoftmax have no bound here: `float32_error` raises NotImplementedError (verify
strips a final softmax where the property allows it, or reports the point unknown).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, MaxPool, Network, Relu, Reshape, Sigmoid, Tanh)

__all__ = ["UNIT_ROUNDOFF", "float32_error"]

UNIT_ROUNDOFF = 2.0 ** -24
_TINY = 2.0 ** -126  # the smallest normal float32: error of one flushed subnormal


def _gamma(k: int) -> float:
    ku = k * UNIT_ROUNDOFF
    return ku / (1.0 - ku)


def _extra_ops(op_type: str) -> int:
    return op_type.count("+")


def float32_error(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor,
                  *, p: float, low, high) -> Tensor:
    """A bound on |f32(x) - f(x)| per output over B_p(centre, eps) ∩ [low, high]^n, where f32 is
    the network run in float32 on float32 inputs and f the network in exact arithmetic.

    Shape: centres (B, n) -> (B, m), float64. Raises NotImplementedError for nodes without a
    bound (Softmax, LogSoftmax), ValueError for an empty region."""
    from specrob.bounds import interval_bounds
    bounds = interval_bounds(net, centres, eps, p=p, low=low, high=high)
    x = bounds[net.input_name][0]
    errors: dict[str, Tensor] = {net.input_name: torch.zeros_like(x)}
    for node in net.nodes:
        if node.output not in bounds:
            continue  # not on the way to the output
        ins = [errors[v] for v in node.inputs]
        mags = [torch.maximum(bounds[v][0].abs(), bounds[v][1].abs()) for v in node.inputs]
        errors[node.output] = _node_error(node, ins, mags, net)
    out = errors[net.output_name]
    return out.reshape(out.shape[0], -1)


def _node_error(node, errs: list[Tensor], mags: list[Tensor], net: Network) -> Tensor:
    r = _extra_ops(node.op_type)
    e, M = errs[0], mags[0]
    if isinstance(node, Affine):
        W = torch.tensor(np.array(node.weight), dtype=e.dtype, device=e.device).abs()
        b = torch.tensor(np.array(node.bias), dtype=e.dtype, device=e.device).abs()
        k = node.in_features + 1 + r
        return e @ W.T + _gamma(k) * (M @ W.T + b) + k * _TINY
    if isinstance(node, Conv):
        W = torch.tensor(np.array(node.weight), dtype=e.dtype, device=e.device).abs()
        b = torch.tensor(np.array(node.bias), dtype=e.dtype, device=e.device).abs()
        top, left, bottom, right = node.pads

        def conv(v: Tensor, bias: Tensor | None) -> Tensor:
            v = F.pad(v, (left, right, top, bottom))
            return F.conv2d(v, W, bias, stride=node.strides, dilation=node.dilations,
                            groups=node.group)
        k = int(np.prod(node.weight.shape[1:])) + 1 + r
        return conv(e, None) + _gamma(k) * conv(M, b) + k * _TINY
    if isinstance(node, (Elementwise, BatchNorm)):
        a, b = node.scale_shift() if isinstance(node, BatchNorm) else (node.scale, node.shift)
        a, b = torch.tensor(np.array(a), dtype=e.dtype, device=e.device), torch.tensor(np.array(b), dtype=e.dtype, device=e.device)
        if isinstance(node, BatchNorm):  # per channel: (C,) -> (C, 1, 1, ...)
            a = a.reshape(-1, *([1] * (e.dim() - 2)))
            b = b.reshape(-1, *([1] * (e.dim() - 2)))
            r += 3  # (x - mean) / sqrt(var + eps) * scale + bias
        return a.abs() * e + _gamma(r + 1) * (a.abs() * M + b.abs()) + (r + 1) * _TINY
    if isinstance(node, Add):
        return errs[0] + errs[1] + UNIT_ROUNDOFF * (mags[0] + mags[1]) + _TINY
    if isinstance(node, AveragePool):
        kh, kw = node.kernel
        k = kh * kw
        top, left, bottom, right = node.pads
        pool = lambda v: F.avg_pool2d(F.pad(v, (left, right, top, bottom)), (kh, kw),  # noqa: E731
                                      stride=node.strides, count_include_pad=True)
        # an average of at most k terms over at least 1: bounded by the window's sum
        return k * pool(e) + _gamma(k + 1 + r) * k * pool(M) + (k + 1) * _TINY
    if isinstance(node, LeakyRelu):
        return max(1.0, abs(float(node.alpha))) * e
    if isinstance(node, (Relu, Clip, Reshape)):
        return e.reshape(e.shape[0], *node.shape) if isinstance(node, Reshape) else e
    if isinstance(node, MaxPool):
        kh, kw = node.kernel
        top, left, bottom, right = node.pads
        v = F.pad(e, (left, right, top, bottom))  # errors are >= 0: padding 0 never wins
        return F.max_pool2d(v, (kh, kw), stride=node.strides, dilation=node.dilations)
    if isinstance(node, (Sigmoid, Tanh)):
        lip = 0.25 if isinstance(node, Sigmoid) else 1.0
        return lip * e + 4 * UNIT_ROUNDOFF + _TINY
    raise NotImplementedError(f"{net.source}: no float32 error bound for {node.op_type} node "
                              f"'{node.name}'")
