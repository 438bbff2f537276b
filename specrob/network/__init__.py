"""Networks: specrob's own IR of a feed-forward classifier, loaded from ONNX (`load_onnx`),
run batched in torch (`to_torch`) and checked against onnxruntime (`load_onnx_checked`)."""
from __future__ import annotations

from specrob.network.ir import (NODE_KINDS, Add, Affine, AnyNode, AveragePool, BatchNorm, Clip,
                                Conv, Elementwise, LeakyRelu, LogSoftmax, MaxPool, Network, NetworkError,
                                Node, Relu, Reshape, Sigmoid, Softmax, Tanh)
from specrob.network.load import (check_against_onnxruntime, input_shape, load_onnx_checked,
                                  sizes)
from specrob.network.onnx_import import SUPPORTED, load_onnx
from specrob.network.oracle import Oracle
from specrob.network.torch_exec import TorchNetwork, to_torch

__all__ = [
    "Network", "Node", "AnyNode", "NODE_KINDS", "NetworkError",
    "Affine", "Elementwise", "Add", "Conv", "BatchNorm", "Relu", "LeakyRelu", "Clip",
    "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Reshape", "MaxPool", "AveragePool",
    "load_onnx", "SUPPORTED", "to_torch", "TorchNetwork",
    "load_onnx_checked", "check_against_onnxruntime", "input_shape", "sizes", "Oracle",
]
