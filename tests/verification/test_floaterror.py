"""The float32 semantics of `verify`: a sound bound on the float32 execution error
(`verify/floaterror.py`), query strengthening by it (`query.strengthen`), and no "verified" for a
network that, as deployed in float32, violates the property (shared case bughunt/21)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
import onnx
from torch import nn

import specrob
from specrob.network import load_onnx_checked
from specrob.lang import query as q
from specrob.verification.floaterror import float32_error
from specrob.verification.pipeline import Verifier, VerifyConfig


def export(model: nn.Module, shape, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(1, *shape),), str(path), input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                          dynamo=False)
    return load_onnx_checked(path)


class Normalised(nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body((x - 0.1307) / 0.3081)


NETS = {
    "mlp": lambda: Normalised(nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64),
                                            nn.ReLU(), nn.Linear(64, 5))),
    "wide-weights": lambda: nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32),
                                          nn.Sigmoid(), nn.Linear(32, 5)),
    "cnn": lambda: nn.Sequential(nn.Unflatten(1, (1, 4, 5)), nn.Conv2d(1, 3, 3, padding=1),
                                 nn.BatchNorm2d(3), nn.ReLU(), nn.AvgPool2d(2, 1),
                                 nn.Flatten(), nn.Linear(36, 5)),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_the_error_bound_covers_onnxruntime_against_float64_everywhere_sampled(tmp_path, name):
    torch.manual_seed(1)
    model = NETS[name]()
    with torch.no_grad():  # large weights: float32 errors well above float64's
        for prm in model.parameters():
            prm.mul_(8.0)
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2)
    net, module = export(model, (20,), tmp_path / "net.onnx")
    rng = np.random.default_rng(0)
    centres = rng.random((4, 20))
    bound = float32_error(net, torch.tensor(centres), 0.1, p=math.inf, low=0.0, high=1.0).numpy()
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    exact = module.double()
    worst = 0.0
    for k, c in enumerate(centres):
        x = np.clip(c + rng.uniform(-0.1, 0.1, (4000, 20)), 0, 1).astype(np.float32)
        deployed = session.run(None, {"x": x})[0].astype(np.float64)
        with torch.no_grad():
            real = exact(torch.tensor(x, dtype=torch.float64)).numpy()
        diff = np.abs(deployed - real)
        assert (diff <= bound[k]).all(), (diff.max(axis=0), bound[k])
        worst = max(worst, float((diff / bound[k]).max()))
    assert worst > 1e-4  # the bound is not vacuous: errors of its order occur


def test_a_strengthened_formula_holds_for_every_output_within_the_error():
    rng = np.random.default_rng(3)
    m = 4
    for _ in range(300):
        out = rng.normal(size=(1, m))
        atom = q.Atom(q.Affine(out, np.zeros((1, 2)), rng.normal(size=1)),
                      (q.NormTerm(float(rng.normal()), q.Affine(rng.normal(size=(3, m)),
                                                                np.zeros((3, 2)),
                                                                rng.normal(size=3)),
                                  rng.choice([1.0, math.inf])),),
                      str(rng.choice(["<", "<=", ">", ">=", "!="])))
        error = rng.uniform(0, 0.3, m)
        strong = q.strengthen(atom, error)
        z, x = rng.normal(size=m), np.zeros(2)
        if q.holds(strong, z, x):
            for _ in range(20):
                assert q.holds(atom, z + rng.uniform(-1, 1, m) * error, x)


def rounding_net(path, scale: float, gap: float):
    """Two logits equal up to `gap` in exact arithmetic along paths of different float32
    rounding: u = relu(scale x + scale), v = relu(scale x); z0 = v + (1/2 + gap),
    z1 = u - (scale - 1/2). Exactly z0 - z1 = gap > 0 (CR of class 0 holds); in float32, u
    carries rounding errors of about scale * 6e-8."""
    c0, c1 = np.float32(0.5 + gap), np.float32(0.5 - scale)
    W1 = np.array([[scale], [scale]], np.float32)
    b1 = np.array([scale, 0.0], np.float32)
    W2 = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    b2 = np.array([c0, c1], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], transB=1),
         helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], transB=1)], "rounding",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(a, n) for a, n in ((W1, "W1"), (b1, "b1"), (W2, "W2"),
                                                     (b2, "b2"))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    exact_gap = float(np.float64(c0) - (scale + np.float64(c1)))
    return exact_gap


@pytest.mark.parametrize("scale, gap", [(1000.0, 1e-5), (4000.0, 5e-5)])
def test_no_verified_for_a_network_that_violates_the_property_as_deployed(tmp_path, scale, gap):
    path = tmp_path / "round.onnx"
    assert rounding_net(path, scale, gap) > 0  # exact arithmetic: class 0 always wins
    net, module = load_onnx_checked(path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    grid = np.linspace(0, 1, 20001, dtype=np.float32)[:, None]
    z = session.run(None, {"x": grid})[0]
    assert (z[:, 1] > z[:, 0]).mean() > 0.01  # float32: class 1 wins on part of every ball
    centres = grid[z[:, 0] > z[:, 1]][::2000][:6]
    x0, y = torch.tensor(centres, dtype=torch.float64), torch.zeros(len(centres), dtype=torch.long)
    prop = specrob.loads("property P = CR(eps = 0.01)\n")["P"]
    for backend in ("auto", "marabou"):
        deployed = Verifier(prop, path, net, module, x0, y,
                            VerifyConfig(backend=backend, timeout=20)).run()
        assert not any(r["verdict"] == "verified" for r in deployed), deployed
        real = Verifier(prop, path, net, module, x0, y,
                        VerifyConfig(backend=backend, timeout=20, semantics="real")).run()
        assert all(r["verdict"] == "verified" for r in real)
