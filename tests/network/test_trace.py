"""A live module read as the network IR (torch.fx): the same function as the module, the same
bounds as its ONNX export, and weights that are the module's own parameters."""
from __future__ import annotations

import importlib.util
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from specrob.bounds import spec_bounds
from specrob.bounds.crown import ibp_bounds
from specrob.bounds.network import CompiledNetwork
from specrob.bounds.region import BoundRegion
from specrob.network import load_onnx
from specrob.network.model_file import build_model
from specrob.network.trace import TraceError, trace_module
from tests.conftest import REPO
from tests.network.test_field_networks import export

CASES = REPO.parent / "shared" / "cases" / "newcomer"


class Standardised(nn.Module):
    """Buffers, arithmetic by constants, F.relu, torch.clamp and x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.3))
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x):
        x = (x - self.mean) / 0.5
        x = x.view(x.size(0), 1, 4, 4)
        x = F.relu(self.conv(x))
        x = x.view(x.size(0), -1)
        return torch.clamp(2.0 * self.fc(x) + 1.0, -3.0, 3.0)


def models():
    torch.manual_seed(3)
    yield "clamp MLP (seed 003)", build_model(REPO / "examples" / "fashion_mnist_net.py", 16, 5), 16
    yield "small CNN", build_model(REPO / "examples" / "small_cnn.py", 64, 10), 64
    yield "Shaham convnet", build_model(REPO / "examples" / "shaham_convnet.py", 64, 10), 64
    yield "standardised", Standardised(), 16
    yield "leaky/sigmoid/tanh", nn.Sequential(nn.Linear(6, 7), nn.LeakyReLU(0.2),
                                               nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 5),
                                               nn.Sigmoid(), nn.Linear(5, 3)), 6
    newcomer = CASES / "cnn_view_model.py"
    if newcomer.exists():  # a model file the developers did not write (F.relu, view)
        spec = importlib.util.spec_from_file_location("cnn_view_model", newcomer)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield "newcomer CNN", module.build(64, 10), 64


@pytest.mark.parametrize("name", [name for name, _, _ in models()])
def test_the_traced_network_computes_what_the_module_computes(name):
    """Oracle: the module itself: IBP over a ball of radius 0 is the exact output."""
    _, model, n = next(m for m in models() if m[0] == name)
    model.double().eval()
    net = trace_module(model, (n,))
    comp = CompiledNetwork(net, torch.device("cpu"), torch.float64)
    x = torch.rand(4, n, dtype=torch.float64)
    low, high = ibp_bounds(comp, BoundRegion(x, torch.zeros(4, dtype=torch.float64), math.inf,
                                             0.0, 1.0))[net.output_name]
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(low.reshape(4, -1), expected, atol=1e-7)  # SAFETY widening
    assert torch.allclose(high.reshape(4, -1), expected, atol=1e-7)


@pytest.mark.parametrize("name", ["clamp MLP (seed 003)", "small CNN", "standardised"])
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_bounds_of_the_traced_network_equal_those_of_its_onnx_export(name, method, tmp_path):
    """Oracle: the verifier's route (torch.onnx.export, then specrob's ONNX import)."""
    _, model, n = next(m for m in models() if m[0] == name)
    onnx_net = load_onnx(export(model, (n,), tmp_path / "m.onnx", fixed=False))
    model.double().eval()
    traced = trace_module(model, (n,))
    x = torch.rand(3, n, dtype=torch.float64)
    eye = torch.eye(onnx_net.output_size, dtype=torch.float64)
    C = eye[:2] - eye[2:4]  # two margin rows
    ours = spec_bounds(traced, x, 0.03, p=math.inf, low=0.0, high=1.0, C=C, method=method)
    theirs = spec_bounds(onnx_net, x, 0.03, p=math.inf, low=0.0, high=1.0, C=C, method=method)
    # the ONNX file holds float32 weights; the module here is float64
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_the_weights_are_the_modules_own_parameters_so_bounds_follow_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    net = trace_module(model, (4,))
    assert net.nodes[0].weight is model[0].weight
    x = torch.rand(2, 4)
    region = BoundRegion(x, torch.full((2,), 0.1), math.inf, 0.0, 1.0)
    low, _ = ibp_bounds(CompiledNetwork(net, x.device, torch.float32), region)[net.output_name]
    low.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    with torch.no_grad():
        model[2].bias += 1.0  # an optimiser step changes the parameters in place
    again, _ = ibp_bounds(CompiledNetwork(net, x.device, torch.float32), region)[net.output_name]
    assert torch.allclose(again, low.detach() + 1.0, atol=1e-5)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x)
        return -self.fc(x)


class Product(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x) * self.fc(x)


class Broadcast(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return torch.relu(x) + self.fc(x)  # (4,) + (1,): broadcasting


class Sliced(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x[:, :2])


@pytest.mark.parametrize("model, words", [
    (Broadcast(), ["node 'add'", "shapes (4,) and (1,)", "broadcasting"]),
    (Sliced(), ["node 'getitem'", "slicing"]),
    (nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)), ["'1'", "BatchNorm1d"]),
    (Branchy(), ["torch.fx cannot trace", "control flow"]),
    (Product(), ["node 'mul'", "product"]),
    (nn.Sequential(nn.Linear(4, 4), nn.GELU()), ["module GELU", "certified training reads"]),
])
def test_what_cannot_be_bounded_is_refused_by_node_with_what_is_supported(model, words):
    with pytest.raises(TraceError) as error:
        trace_module(model, (4,), source="m.py")
    assert str(error.value).startswith("m.py")
    for word in words:
        assert word in str(error.value)
