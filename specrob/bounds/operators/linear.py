"""Nodes that are affine maps: Affine (Gemm/MatMul), Elementwise and BatchNorm scalings, Add,
Reshape. Exact in CROWN; IBP by positive/negative parts (Gowal et al. 2018).
"""
from __future__ import annotations


import numpy as np

from specrob.network.ir import (Add, Affine, BatchNorm, Elementwise,
                                Reshape)
from specrob.bounds.common import DTYPE, as_tensor, dot, down, pos_neg, up
from specrob.bounds.operators.base import Op


class AffineOp(Op):
    def __init__(self, node: Affine, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        self.W = as_tensor(node.weight, device, dtype)
        self.Wp, self.Wn = pos_neg(self.W)
        self.b = as_tensor(node.bias, device, dtype)

    def interval(self, bounds):
        l, u = bounds[0]
        # IBP (Gowal et al. 2018): positive weights take the same side, negative the other
        return (down(l @ self.Wp.T + u @ self.Wn.T + self.b),
                up(u @ self.Wp.T + l @ self.Wn.T + self.b))

    def back(self, A):
        return [A @ self.W]

    def const(self, A):
        return (A @ self.b).reshape(A.shape[0], A.shape[1], -1).sum(-1)


class ScaleOp(Op):
    """y = x * scale + shift coordinatewise (Elementwise; BatchNorm per channel)."""

    def __init__(self, node: Elementwise | BatchNorm, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        if isinstance(node, BatchNorm):
            a, b = node.scale_shift()
            extra = (1,) * (len(self.out_shape) - 1)
            scale, shift = a.reshape(-1, *extra), b.reshape(-1, *extra)
        else:
            scale, shift = node.scale, node.shift
        self.scale = as_tensor(np.broadcast_to(scale, self.out_shape), device, dtype)
        self.shift = as_tensor(np.broadcast_to(shift, self.out_shape), device, dtype)
        self.sp, self.sn = pos_neg(self.scale)

    def interval(self, bounds):
        l, u = bounds[0]
        return (down(self.sp * l + self.sn * u + self.shift),
                up(self.sp * u + self.sn * l + self.shift))

    def back(self, A):
        return [A * self.scale]

    def const(self, A):
        return dot(A, self.shift)


class AddOp(Op):
    def __init__(self, node: Add, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        self.subtract = node.subtract

    def interval(self, bounds):
        (l1, u1), (l2, u2) = bounds
        if self.subtract:
            return down(l1 - u2), up(u1 - l2)
        return down(l1 + l2), up(u1 + u2)

    def back(self, A):
        return [A, -A if self.subtract else A]


class ReshapeOp(Op):
    def __init__(self, node: Reshape, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)

    def interval(self, bounds):
        l, u = bounds[0]
        return l.reshape(l.shape[0], *self.out_shape), u.reshape(u.shape[0], *self.out_shape)

    def back(self, A):
        return [A.reshape(A.shape[0], A.shape[1], *self.in_shapes[0])]
