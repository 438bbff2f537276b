"""Conv and AveragePool as linear maps (AveragePool is a depthwise convolution with uniform
weights): IBP by positive/negative parts, CROWN backwards by the transposed convolution.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from specrob.network.ir import (AveragePool, Conv)
from specrob.bounds.common import DTYPE, as_tensor, dot, down, up
from specrob.bounds.operators.base import Op


class ConvOp(Op):
    """Conv, and AveragePool as a depthwise convolution by ones times 1 / (window count);
    backwards it is the transposed convolution (the adjoint of the linear map)."""

    def __init__(self, node: Conv | AveragePool, shapes, device, dtype=DTYPE):
        super().__init__(node, shapes)
        C, H, W = self.in_shapes[0]
        self.pads = tuple(node.pads)  # (top, left, bottom, right)
        self.stride = tuple(node.strides)
        self.out_scale: Tensor | None = None
        if isinstance(node, Conv):
            self.W = as_tensor(node.weight, device, dtype)
            self.b = as_tensor(node.bias, device, dtype)
            self.b_map = self.b[:, None, None].expand(self.out_shape).contiguous()
            self.dilation, self.groups = tuple(node.dilations), int(node.group)
        else:
            kh, kw = node.kernel
            self.W = torch.ones((C, 1, kh, kw), dtype=dtype, device=device)
            self.b = None
            self.dilation, self.groups = (1, 1), C
            if node.count_include_pad or not any(self.pads):
                self.W = self.W / (kh * kw)
            else:  # the mean over the real pixels of each window
                ones = torch.ones((1, 1, H, W), dtype=dtype, device=device)
                counts = self._apply(ones, torch.ones((1, 1, kh, kw), dtype=dtype,
                                                      device=device), groups=1)
                self.out_scale = 1.0 / counts[0]  # (1, H_out, W_out)
        self.W_abs = self.W.abs()
        self.has_neg = bool((self.W < 0).any())

    def _apply(self, x: Tensor, weight: Tensor, groups: int | None = None) -> Tensor:
        top, left, bottom, right = self.pads
        padding = (top, left)
        if (top, left) != (bottom, right):  # asymmetric (ONNX allows it): pad first
            x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
        y = F.conv2d(x, weight, None, self.stride, padding, self.dilation,
                     self.groups if groups is None else groups)
        return y if self.out_scale is None else y * self.out_scale

    def _bias(self, y: Tensor) -> Tensor:
        return y if self.b is None else y + self.b[:, None, None]

    def interval(self, bounds):
        l, u = bounds[0]
        if not self.has_neg:  # pooling: monotone
            return down(self._bias(self._apply(l, self.W))), up(self._bias(self._apply(u, self.W)))
        # centre and radius (Gowal et al.): two convolutions instead of four; the rounding
        # this changes is inside the SAFETY widening
        mid, rad = self._apply((l + u) / 2, self.W), self._apply((u - l) / 2, self.W_abs)
        return down(self._bias(mid - rad)), up(self._bias(mid + rad))

    def back(self, A):
        B, K = A.shape[:2]
        C, H, W = self.in_shapes[0]
        top, left, bottom, right = self.pads
        if self.out_scale is not None:
            A = A * self.out_scale
        A = A.reshape(B * K, *self.out_shape)
        kh, kw = self.W.shape[2:]
        (sh, sw), (dh, dw) = self.stride, self.dilation
        Hp, Wp = H + top + bottom, W + left + right
        Ho, Wo = self.out_shape[1:]
        extra = (Hp - ((Ho - 1) * sh + dh * (kh - 1) + 1), Wp - ((Wo - 1) * sw + dw * (kw - 1) + 1))
        X = F.conv_transpose2d(A, self.W, None, self.stride, 0, extra, self.groups, self.dilation)
        X = X[:, :, top:top + H, left:left + W]
        return [X.reshape(B, K, C, H, W)]

    def const(self, A):
        return None if self.b is None else dot(A, self.b_map)
