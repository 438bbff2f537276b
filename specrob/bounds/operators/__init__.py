"""The network's nodes as bound operators, one family per file (as auto_LiRPA's operators/):
the registry OPS maps each IR node type to its operator."""
from specrob.network.ir import (Add, Affine, AveragePool, BatchNorm, Clip, Conv, Elementwise,
                                LeakyRelu, MaxPool, Relu, Reshape, Sigmoid, Softmax, Tanh)
from specrob.bounds.operators.base import Op
from specrob.bounds.operators.conv import ConvOp
from specrob.bounds.operators.linear import AddOp, AffineOp, ReshapeOp, ScaleOp
from specrob.bounds.operators.pool import MaxPoolOp
from specrob.bounds.operators.relu import KinkOp
from specrob.bounds.operators.smooth import SmoothOp
from specrob.bounds.operators.softmax import SoftmaxOp

OPS = {Affine: AffineOp, Elementwise: ScaleOp, BatchNorm: ScaleOp, Add: AddOp,
        Reshape: ReshapeOp, Conv: ConvOp, AveragePool: ConvOp, Relu: KinkOp,
        LeakyRelu: KinkOp, Clip: KinkOp, Sigmoid: SmoothOp, Tanh: SmoothOp,
        MaxPool: MaxPoolOp, Softmax: SoftmaxOp}

__all__ = ["OPS", "Op"]
