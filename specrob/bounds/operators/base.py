"""The base of the bound operators: one IR node with its interval map; linear nodes also map
linear coefficients backwards (CROWN).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from specrob.network.ir import (Node)
from specrob.bounds.common import Interval


class Op:
    """One IR node with its interval map; linear nodes also map coefficients backwards."""

    kind = "linear"  # linear | kink (ReLU decompositions) | relaxed (other lines) | softmax

    def __init__(self, node: Node, shapes: dict[str, tuple[int, ...]]):
        self.node = node
        self.in_shapes = [shapes[v] for v in node.inputs]
        self.out_shape = tuple(node.shape)

    def interval(self, bounds: Sequence[Interval]) -> Interval:
        raise NotImplementedError

    def back(self, A: Tensor) -> list[Tensor]:
        """The coefficients on the inputs of A · output (A: (B, K, *out_shape))."""
        raise NotImplementedError

    def const(self, A: Tensor) -> Tensor | None:
        """The constant part of A · output, (B, K), or None when the node has no offset."""
        return None
