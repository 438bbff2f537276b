"""The network's nodes as Marabou constraints: each node of specrob's network IR encoded
exactly (affine maps as equations; ReLU, LeakyReLU, Clip, MaxPool as piecewise-linear
constraints), or refused with the node and the reason (`supports`).
"""
from __future__ import annotations

import math

import numpy as np

from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, LogSoftmax, MaxPool, Network, Node, Relu, Reshape,
                                Sigmoid, Softmax, Tanh)
from specrob.verification.marabou.encoding import Encoding, NotEncodable

_NOT_PIECEWISE_LINEAR = (Sigmoid, Tanh, Softmax, LogSoftmax)
_ENCODED = (Affine, Elementwise, Add, Conv, BatchNorm, Relu, LeakyRelu, Clip, Reshape, MaxPool,
            AveragePool)


def supports(net: Network) -> str | None:
    """None when every node of the network can be encoded exactly, else the first reason."""
    for node in net.nodes:
        if not isinstance(node, _ENCODED):
            return reason(node)
    return None


def reason(node: Node) -> str:
    """Why a node cannot be encoded."""
    if isinstance(node, _NOT_PIECEWISE_LINEAR):
        return f"{type(node).__name__} node '{node.name}' is not piecewise linear"
    return f"{type(node).__name__} node '{node.name}' is not supported by the Marabou back end"


def _windows(in_shape: tuple[int, ...], out_shape: tuple[int, ...], kernel: tuple[int, int],
             strides: tuple[int, int], pads: tuple[int, int, int, int],
             dilations: tuple[int, int]):
    """For 2-D pooling / convolution windows: per (out channel-free position, kernel offset),
    the flat output position (oh, ow), the kernel index (i, j), the input (ih, iw) and whether
    it lies inside the input (not in the padding)."""
    _, H, W = in_shape
    _, Ho, Wo = out_shape
    oh, ow, i, j = np.meshgrid(np.arange(Ho), np.arange(Wo), np.arange(kernel[0]),
                               np.arange(kernel[1]), indexing="ij")
    ih = oh * strides[0] - pads[0] + i * dilations[0]
    iw = ow * strides[1] - pads[1] + j * dilations[1]
    inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    return oh.ravel(), ow.ravel(), i.ravel(), j.ravel(), ih.ravel(), iw.ravel(), inside.ravel()


def _encode_node(enc: Encoding, node: Node, args: list[np.ndarray],
                 shapes: list[tuple[int, ...]]) -> np.ndarray:
    """The variables (an array of the node's per-sample shape) of one node's output."""
    x, shape = args[0], tuple(node.shape)
    if isinstance(node, Reshape):
        return x.reshape(shape)
    if isinstance(node, Affine):
        lead = x.reshape(-1, node.in_features)
        return np.stack([enc.dense(node.weight, row, node.bias) for row in lead]).reshape(shape)
    if isinstance(node, (Elementwise, BatchNorm)):
        if isinstance(node, BatchNorm):
            a, b = node.scale_shift()
            a = np.broadcast_to(a.reshape(-1, *[1] * (len(shape) - 1)), shape)
            b = np.broadcast_to(b.reshape(-1, *[1] * (len(shape) - 1)), shape)
        else:
            a, b = np.broadcast_to(node.scale, shape), np.broadcast_to(node.shift, shape)
        size = math.prod(shape)
        return enc.linear(np.arange(size), x.ravel(), a.ravel(), b.ravel()).reshape(shape)
    if isinstance(node, Add):
        size = math.prod(shape)
        sign = -1.0 if node.subtract else 1.0
        rows = np.concatenate([np.arange(size), np.arange(size)])
        cols = np.concatenate([x.ravel(), args[1].ravel()])
        coefs = np.concatenate([np.ones(size), np.full(size, sign)])
        return enc.linear(rows, cols, coefs, np.zeros(size)).reshape(shape)
    if isinstance(node, Relu):
        return enc.relu(x.ravel()).reshape(shape)
    if isinstance(node, LeakyRelu):
        return enc.leaky_relu(x.ravel(), float(node.alpha)).reshape(shape)
    if isinstance(node, Clip):
        return enc.clip(x.ravel(), node.low, node.high).reshape(shape)
    if isinstance(node, Conv):
        return _conv(enc, node, x, shapes[0])
    if isinstance(node, AveragePool):
        return _average_pool(enc, node, x, shapes[0])
    if isinstance(node, MaxPool):
        return _max_pool(enc, node, x, shapes[0])
    raise NotEncodable(reason(node))


def _conv(enc: Encoding, node: Conv, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """A convolution as sparse linear equations, one per output pixel (zero padding adds no
    term)."""
    _, H, W = in_shape
    Co, Ho, Wo = node.shape
    c_in = node.weight.shape[1]
    c_out = Co // node.group
    oh, ow, i, j, ih, iw, inside = _windows(in_shape, node.shape, node.weight.shape[2:],
                                            node.strides, node.pads, node.dilations)
    oh, ow, i, j, ih, iw = (a[inside] for a in (oh, ow, i, j, ih, iw))
    co, cl = np.meshgrid(np.arange(Co), np.arange(c_in), indexing="ij")
    co, cl = co.ravel()[:, None], cl.ravel()[:, None]
    ci = (co // c_out) * c_in + cl
    rows = (co * Ho + oh) * Wo + ow
    cols = x.ravel()[(ci * H + ih) * W + iw]
    coefs = node.weight[co, cl, i, j]
    const = np.repeat(node.bias, Ho * Wo)
    return enc.linear(rows.ravel(), cols.ravel(), coefs.ravel(), const).reshape(node.shape)


def _average_pool(enc: Encoding, node: AveragePool, x: np.ndarray,
                  in_shape: tuple[int, ...]) -> np.ndarray:
    """The mean of each window: over the whole window with count_include_pad (padding adds
    zeros), else over its pixels inside the input (as the torch executor computes it)."""
    C, H, W = in_shape
    _, Ho, Wo = node.shape
    oh, ow, _, _, ih, iw, inside = _windows(in_shape, node.shape, node.kernel, node.strides,
                                            node.pads, (1, 1))
    position = oh * Wo + ow
    if node.count_include_pad:
        count = np.full(Ho * Wo, float(node.kernel[0] * node.kernel[1]))
    else:
        count = np.bincount(position[inside], minlength=Ho * Wo).astype(float)
    position, ih, iw = position[inside], ih[inside], iw[inside]
    c = np.arange(C)[:, None]
    rows = c * Ho * Wo + position
    cols = x.ravel()[(c * H + ih) * W + iw]
    coefs = np.broadcast_to(1.0 / count[position], rows.shape)
    return enc.linear(rows.ravel(), cols.ravel(), coefs.ravel(),
                      np.zeros(C * Ho * Wo)).reshape(node.shape)


def _max_pool(enc: Encoding, node: MaxPool, x: np.ndarray,
              in_shape: tuple[int, ...]) -> np.ndarray:
    """The max of each window's pixels inside the input (padding is -inf and never wins)."""
    C, H, W = in_shape
    _, Ho, Wo = node.shape
    oh, ow, _, _, ih, iw, inside = _windows(in_shape, node.shape, node.kernel, node.strides,
                                            node.pads, node.dilations)
    position = (oh * Wo + ow)[inside]
    flat_in = (ih * W + iw)[inside]
    xs = x.reshape(C, H * W)
    out = np.empty((C, Ho * Wo), np.int64)
    for p in range(Ho * Wo):
        pixels = flat_in[position == p]
        for c in range(C):
            out[c, p] = enc.maximum(xs[c, pixels].tolist())
    return out.reshape(node.shape)


def encode_network(enc: Encoding, net: Network, x: np.ndarray,
                   known: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> np.ndarray:
    """The output variables (flat, length m) of the network on the input variables x.
    `known`: sound bounds (lower, upper arrays of the value's shape) of some values over the
    query's region, e.g. branch and bound's; each value's variables get them before the nodes
    that read it are encoded (a ReLU whose input is then stable is encoded as linear)."""
    values = {net.input_name: x.reshape(net.input_shape)}
    for node in net.nodes:
        args = [values[v] for v in node.inputs]
        values[node.output] = _encode_node(enc, node, args,
                                           [net.shape_of(v) for v in node.inputs])
        if known and node.output in known:
            lo, hi = known[node.output]
            enc.tighten(values[node.output], lo, hi)
    return values[net.output_name].ravel()
