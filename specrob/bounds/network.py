"""A network compiled into bound operators on one device, cached per network.
"""
from __future__ import annotations

import math
import weakref

import torch

from specrob.network.ir import (Network)
from specrob.bounds.common import DTYPE
from specrob.bounds.operators import OPS, Op


class CompiledNetwork:
    """A network's nodes as bound operators on one device, in float64 (verification: built
    once per network, `compile_network`) or another dtype. A network traced from a live module
    (`specrob.network.trace`) holds its parameters as tensors: compiled again after every
    update, its bounds are differentiable in the weights (certified training)."""

    def __init__(self, net: Network, device: torch.device, dtype: torch.dtype = DTYPE):
        # the network's fields, not the network: the cache holds this weakly keyed by it
        self.source, self.input_name, self.output_name = net.source, net.input_name, net.output_name
        self.input_shape, self.output_shape = tuple(net.input_shape), tuple(net.output_shape)
        shapes = {net.input_name: tuple(net.input_shape)}
        self.ops: list[Op] = []
        for node in net.nodes:
            if type(node) not in OPS:
                raise NotImplementedError(f"{net.source}: no bound propagation for "
                                          f"{type(node).__name__} node '{node.name}'")
            self.ops.append(OPS[type(node)](node, shapes, device, dtype))
            shapes[node.output] = tuple(node.shape)
        self.shapes = shapes
        self.producer = {node.output: i for i, node in enumerate(net.nodes)}
        # the nodes the output depends on
        needed, live = {net.output_name}, set()
        for i in reversed(range(len(net.nodes))):
            if net.nodes[i].output in needed:
                live.add(i)
                needed.update(net.nodes[i].inputs)
        self.live = sorted(live)
        self.consumers: dict[str, list[int]] = {}
        for i in self.live:
            for v in net.nodes[i].inputs:
                self.consumers.setdefault(v, []).append(i)
        self.max_size = max(math.prod(s) for s in shapes.values())


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compile_network(net: Network, device: torch.device) -> CompiledNetwork:
    per_net = _CACHE.setdefault(net, {})
    if device not in per_net:
        per_net[device] = CompiledNetwork(net, device)
    return per_net[device]
