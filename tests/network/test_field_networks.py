"""Classifiers as they come from the field load and run: a fixed batch of 1 (VNN-COMP, ERAN,
torch.onnx.export without dynamic axes) as well as a symbolic one, inputs of any per-sample
shape fed flat or shaped, normalisation inside the graph, the shape computations torch exports
for x.view(x.size(0), -1) and nn.Unflatten, BatchNorm, pooling, Dropout, a final
(Log)Softmax, opsets 9 to 18; onnxruntime is always fed shapes the model accepts (`Oracle`).

The dynamo exporter needs onnxscript, which is not installed here: its files are covered by
the shared dynamo exports (/work/shared/cases/newcomer), the rest by the legacy exporter.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from specrob.network import (
    Affine,
    BatchNorm,
    Conv,
    Elementwise,
    LogSoftmax,
    MaxPool,
    NetworkError,
    Oracle,
    Relu,
    Reshape,
    load_onnx,
    load_onnx_checked,
)
from tests.conftest import SHARED

NEWCOMER = SHARED / "cases" / "newcomer"
MNISTFC = SHARED / "benchmarks" / "vnncomp2021-mnistfc"


def export(model: nn.Module, shape: tuple[int, ...], path: Path, *, fixed: bool,
           opset: int = 17) -> Path:
    """torch.onnx.export (legacy path) with a batch fixed at 1 or symbolic."""
    torch.manual_seed(0)
    axes = None if fixed else {"x": {0: "batch"}, "y": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.rand(1, *shape),), str(path), input_names=["x"],
                          output_names=["y"], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)
    return path


def assert_runs_like_onnxruntime(path: Path, batch: int = 5, original: nn.Module | None = None
                                 ) -> None:
    """load_onnx_checked passes, and on a batch fed flat the module, onnxruntime (through the
    Oracle, which loops over a fixed batch) and the original torch module agree."""
    net, module = load_onnx_checked(path)
    n = net.input_size
    x = np.random.default_rng(3).random((batch, n)).astype(np.float32)
    expected = Oracle(path)(x)
    assert expected.shape == (batch, net.output_size) and expected.dtype == np.float64
    with torch.no_grad():
        got = module(torch.from_numpy(x)).double().numpy()
        shaped = module(torch.from_numpy(x).reshape(batch, *net.input_shape)).double().numpy()
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(got, shaped)
    if original is not None:
        with torch.no_grad():
            reference = original.eval()(torch.from_numpy(x).reshape(batch, *net.input_shape))
        np.testing.assert_allclose(got, reference.reshape(batch, -1).double().numpy(), rtol=0,
                                   atol=1e-5 * scale)


# --- torch modules as people write them ------------------------------------------------

class Normalised(nn.Module):
    """(x - mean) / std inside the network, with constants of several broadcast shapes."""

    def __init__(self, mean_shape: tuple[int, ...], input_shape: tuple[int, ...]):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("mean", torch.rand(mean_shape, generator=g))
        self.register_buffer("std", 0.5 + torch.rand(mean_shape, generator=g))
        self.fc = nn.Linear(math.prod(input_shape), 10)

    def forward(self, x):
        z = (x - self.mean) / self.std * 2.0 + 0.1
        return self.fc(torch.flatten(z, 1))


class ViewCNN(nn.Module):
    """x.view(x.size(0), ...): Shape, Gather, Unsqueeze, Concat, Reshape in the file."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.fc = nn.Linear(8 * 2 * 2, 10)

    def forward(self, x):
        x = x.view(x.size(0), 1, 8, 8)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return self.fc(x.view(x.size(0), -1))


def unflatten_cnn() -> nn.Module:
    """nn.Unflatten + nn.Flatten: Mod, Slice, Concat on the shape in the file."""
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(32, 10))


class Squeezed(nn.Module):
    """unsqueeze, a transpose that only moves an axis of size 1, squeeze."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x):  # x: (B, 12, 1)
        z = x.transpose(1, 2).unsqueeze(1)  # (B, 1, 1, 12)
        return self.fc(z.squeeze(1).squeeze(1))


def with_batchnorm_statistics(model: nn.Module) -> nn.Module:
    torch.manual_seed(2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def conv_zoo() -> nn.Module:
    return with_batchnorm_statistics(nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1, dilation=1), nn.BatchNorm2d(4), nn.Tanh(),
        nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2), nn.Sigmoid(), nn.Dropout(0.3),
        nn.Conv2d(4, 4, 3, padding="same"), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=False),
        nn.MaxPool2d(2, stride=1, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Identity(), nn.Linear(4, 6), nn.Softmax(dim=1)))


def mlp_zoo() -> nn.Module:
    return with_batchnorm_statistics(nn.Sequential(
        nn.BatchNorm1d(20), nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(16, 5), nn.LogSoftmax(dim=1)))


MODULES = {
    "normalisation, constants (1, 1, 1, 1) on (1, 6, 6)": (
        lambda: Normalised((1, 1, 1, 1), (1, 6, 6)), (1, 6, 6)),
    "normalisation, constants (1, 784, 1) on (784, 1)": (
        lambda: Normalised((1, 784, 1), (784, 1)), (784, 1)),
    "normalisation, constants (784,) on (784,)": (
        lambda: Normalised((784,), (784,)), (784,)),
    "normalisation, per-channel constants (3, 1, 1) on (3, 4, 4)": (
        lambda: Normalised((3, 1, 1), (3, 4, 4)), (3, 4, 4)),
    "x.view(x.size(0), -1) CNN": (ViewCNN, (64,)),
    "nn.Unflatten CNN": (unflatten_cnn, (64,)),
    "Conv stride/dilation/groups/same, BatchNorm2d, Dropout, pools, Softmax": (conv_zoo,
                                                                               (2, 9, 9)),
    "BatchNorm1d before and after Linear, Dropout, LogSoftmax": (mlp_zoo, (20,)),
    "Unsqueeze, size-1 Transpose, Squeeze": (Squeezed, (12, 1)),
}


@pytest.mark.parametrize("fixed", [True, False], ids=["batch 1", "symbolic batch"])
@pytest.mark.parametrize("case", MODULES)
def test_legacy_exports_load_and_match_onnxruntime_and_torch(case, fixed, tmp_path):
    build, shape = MODULES[case]
    model = build()
    path = export(model, shape, tmp_path / "m.onnx", fixed=fixed)
    assert load_onnx(path).batch == (1 if fixed else None)
    assert_runs_like_onnxruntime(path, original=model)


# torch exports nn.Unflatten (aten::unflatten) from opset 13 only: those pairs are not made
@pytest.mark.parametrize("case, opset", [
    (case, opset) for opset in range(9, 19)
    for case in ("x.view(x.size(0), -1) CNN", "nn.Unflatten CNN",
                 "BatchNorm1d before and after Linear, Dropout, LogSoftmax")
    if not (case == "nn.Unflatten CNN" and opset < 13)])
def test_every_opset_from_9_to_18(case, opset, tmp_path):
    build, shape = MODULES[case]
    model = build()
    path = export(model, shape, tmp_path / "m.onnx", fixed=opset % 2 == 0, opset=opset)
    assert_runs_like_onnxruntime(path, original=model)


def test_shape_computations_fold_into_plain_reshapes(tmp_path):
    net = load_onnx(export(ViewCNN(), (64,), tmp_path / "v.onnx", fixed=False))
    assert [type(n) for n in net.nodes] == [Reshape, Conv, Relu, MaxPool, Conv, Relu, Reshape,
                                            Affine]
    assert net.nodes[0].shape == (1, 8, 8) and net.nodes[-2].shape == (32,)
    net = load_onnx(export(unflatten_cnn(), (64,), tmp_path / "u.onnx", fixed=False))
    assert type(net.nodes[0]) is Reshape and net.nodes[0].shape == (1, 8, 8)


def test_batchnorm_folds_into_its_neighbouring_layers_and_dropout_disappears(tmp_path):
    net = load_onnx(export(mlp_zoo(), (20,), tmp_path / "m.onnx", fixed=True, opset=9))
    assert [type(n) for n in net.nodes] == [Affine, Relu, Affine, LogSoftmax]
    assert net.nodes[0].op_type == "BatchNormalization+Gemm+BatchNormalization"
    assert not any(isinstance(n, BatchNorm) for n in net.nodes)


def test_a_batchnorm_that_cannot_fold_stays_a_scale_node(tmp_path):
    path = hand_model(tmp_path / "bn.onnx", [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("BatchNormalization", ["r", "s", "b", "m", "v"], ["y"], name="bn")],
        ["batch", 3, 2, 2], output_dims=["batch", 3, 2, 2],
        weights={"s": np.float32([1, 2, 3]), "b": np.float32([0, 1, 2]),
                 "m": np.float32([0.5, 0, -1]), "v": np.float32([1, 2, 3])})
    assert [type(n) for n in load_onnx(path).nodes] == [Relu, BatchNorm]
    assert_runs_like_onnxruntime(path)


# --- hand-built files: what the exporters write in other ways ----------------------------

def hand_model(path: Path, nodes: list, input_dims: list, weights: dict | None = None,
               opset: int = 13, output_dims: list | None = None) -> Path:
    output_dims = output_dims or [input_dims[0], None]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_dims)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_dims)],
        initializer=[numpy_helper.from_array(np.asarray(v), k)
                     for k, v in (weights or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    path.write_bytes(model.SerializeToString())
    return path


def eran_mnist(path: Path, batch, opset: int = 9) -> Path:
    """An ERAN/VNN-COMP style MNIST network: input (1, 784, 1), Sub and Div by constants of
    shapes (1, 784, 1) and (1, 1, 1), Flatten, Gemm, Relu, Gemm."""
    rng = np.random.default_rng(0)
    return hand_model(path, [
        helper.make_node("Sub", ["x", "mean"], ["a"], name="sub"),
        helper.make_node("Div", ["a", "std"], ["b"], name="div"),
        helper.make_node("Flatten", ["b"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "W2", "b2"], ["y"], name="fc2", transB=1)],
        [batch, 784, 1], {"mean": rng.random((1, 784, 1), np.float32),
                          "std": np.full((1, 1, 1), 0.3081, np.float32),
                          "W1": rng.standard_normal((32, 784), np.float32) / 28,
                          "b1": rng.standard_normal(32, np.float32),
                          "W2": rng.standard_normal((10, 32), np.float32),
                          "b2": rng.standard_normal(10, np.float32)}, opset=opset)


@pytest.mark.parametrize("batch", [1, "N"])
def test_an_eran_style_network_with_in_graph_normalisation(batch, tmp_path):
    path = eran_mnist(tmp_path / "eran.onnx", batch)
    net = load_onnx(path)
    assert net.input_shape == (784, 1) and net.batch == (1 if batch == 1 else None)
    assert [type(n) for n in net.nodes] == [Elementwise, Reshape, Affine, Relu, Affine]
    assert net.output_size == 10
    assert_runs_like_onnxruntime(path, batch=7)


def test_the_oracle_feeds_a_fixed_batch_one_sample_at_a_time(tmp_path):
    path = eran_mnist(tmp_path / "eran.onnx", 1)
    oracle = Oracle(path)
    x = np.random.default_rng(0).random((6, 784))
    flat, shaped = oracle(x), oracle(x.reshape(6, 784, 1))
    assert flat.shape == (6, 10) and flat.dtype == np.float64
    np.testing.assert_array_equal(flat, shaped)
    for i in range(6):  # each sample alone gives the same
        np.testing.assert_array_equal(oracle(x[i:i + 1]), flat[i:i + 1])
    assert oracle(x[:0]).shape == (0, 10)
    with pytest.raises(NetworkError, match=r"eran.onnx: a batch of shape \(6, 783\) does not "
                                           r"fit the model's input \(batch, 784, 1\)"):
        oracle(x[:, :783])


def test_the_oracle_pads_a_fixed_batch_larger_than_one(tmp_path):
    path = hand_model(tmp_path / "four.onnx", [
        helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)],
        [4, 3], {"W": np.float32([[1, 2, 3], [0, -1, 0]])})
    x = np.random.default_rng(0).random((7, 3))
    np.testing.assert_allclose(Oracle(path)(x), x @ np.array([[1, 2, 3], [0, -1, 0]]).T,
                               rtol=1e-6)


def test_the_oracle_says_when_onnxruntime_cannot_load_a_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(NetworkError, match=r"bad.onnx: onnxruntime cannot load the model"):
        Oracle(bad)


def test_shape_computations_that_depend_on_the_batch_otherwise_are_refused(tmp_path):
    path = hand_model(tmp_path / "odd.onnx", [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Mul", ["s", "two"], ["t"], name="twice"),
        helper.make_node("Reshape", ["x", "t"], ["y"], name="odd_reshape")],
        ["N", 6], {"two": np.array([2, 1], np.int64)})
    with pytest.raises(NetworkError, match=r"odd.onnx: Reshape node 'odd_reshape' \(index 2\): "
                                           r"the target shape depends on the batch size"):
        load_onnx(path)


def test_a_transpose_that_moves_data_is_refused_by_node(tmp_path):
    path = hand_model(tmp_path / "t.onnx", [
        helper.make_node("Transpose", ["x"], ["y"], name="swap", perm=[0, 2, 1])],
        ["N", 2, 3], output_dims=["N", 3, 2])
    with pytest.raises(NetworkError, match=r"t.onnx: Transpose node 'swap' \(index 0\): a "
                                           r"transpose with perm \[0, 2, 1\] .* reorders"):
        load_onnx(path)


def test_an_operator_on_the_data_is_refused_even_when_the_same_operator_folds(tmp_path):
    """Gather on a shape folds; Gather on the data is named with its node and index."""
    path = hand_model(tmp_path / "g.onnx", [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Gather", ["r", "i"], ["y"], name="pick", axis=1)],
        ["N", 5], {"i": np.array([0, 2], np.int64)})
    with pytest.raises(NetworkError, match=r"g.onnx: operator 'Gather' \(node 'pick', index "
                                           r"1\) is not supported: specrob handles this "
                                           r"operator on constant \(shape\) values only"):
        load_onnx(path)


def test_the_number_of_classes_comes_from_the_output(tmp_path):
    path = export(nn.Sequential(nn.Linear(4, 7)), (4,), tmp_path / "m.onnx", fixed=True)
    net, module = load_onnx_checked(path)
    assert net.output_size == 7 and module(torch.rand(3, 4)).shape == (3, 7)


# --- back ends refuse what they do not bound -------------------------------------------

def test_bounds_and_marabou_refuse_a_log_softmax_node_gracefully(tmp_path):
    from specrob import bounds
    from specrob.verification import marabou

    net = load_onnx(export(mlp_zoo(), (20,), tmp_path / "m.onnx", fixed=False))
    assert isinstance(net.nodes[-1], LogSoftmax)
    assert bounds.unsupported(net, "ibp") and not bounds.supports(net, "crown")
    with pytest.raises(NotImplementedError, match=r"no bound propagation for LogSoftmax"):
        bounds.output_bounds(net, np.zeros((1, 20)), 0.1, p=math.inf, low=0.0, high=1.0,
                             method="ibp")
    assert "LogSoftmax node" in marabou.supports(net)


# --- the shared field files --------------------------------------------------------------



@pytest.mark.parametrize("name, batch", [
    ("fixed_batch1_legacy.onnx", 1), ("plain_dynamo.onnx", 1), ("plain_dynamo_dyn.onnx", None),
    ("cnn_view_user.onnx", None), ("cnn_unflatten_mod_op.onnx", None)])
def test_the_shared_newcomer_networks_load_and_match_onnxruntime(name, batch):
    path = NEWCOMER / name
    assert load_onnx(path).batch == batch
    assert_runs_like_onnxruntime(path, batch=9)


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_the_vnncomp_mnistfc_networks_load_and_match_onnxruntime(depth):
    path = MNISTFC / f"mnist-net_256x{depth}.onnx"
    net, _ = load_onnx_checked(path)
    assert (net.input_shape, net.batch, net.output_size) == ((784, 1), 1, 10)
    assert sum(isinstance(n, Affine) for n in net.nodes) == depth + 1
    assert_runs_like_onnxruntime(path, batch=4)


# --- operators the exporters write only sometimes, hand-built at several opsets ---------

def _w(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


HAND = {
    # name: (nodes, per-sample input, per-sample output, weights, opset)
    "Dropout, opset 9, mask output unused": (
        [helper.make_node("Dropout", ["x"], ["d", "mask"], name="drop", ratio=0.5),
         helper.make_node("Gemm", ["d", "W", "b"], ["y"], name="fc", transB=1)],
        [6], [3], {"W": _w(3, 6), "b": _w(3)}, 9),
    "Dropout, opset 13, ratio and training_mode inputs": (
        [helper.make_node("Dropout", ["x", "ratio", "train"], ["d"], name="drop"),
         helper.make_node("Gemm", ["d", "W"], ["y"], name="fc", transB=1)],
        [6], [3], {"W": _w(3, 6), "ratio": np.float32(0.3), "train": np.bool_(False)}, 13),
    "Cast to float, Identity": (
        [helper.make_node("Cast", ["x"], ["c"], name="cast", to=TensorProto.FLOAT),
         helper.make_node("Identity", ["c"], ["i"], name="id"),
         helper.make_node("Gemm", ["i", "W"], ["y"], name="fc", transB=1)],
        [6], [3], {"W": _w(3, 6)}, 13),
    "GlobalMaxPool, Squeeze opset 11": (
        [helper.make_node("GlobalMaxPool", ["x"], ["g"], name="gmp"),
         helper.make_node("Squeeze", ["g"], ["y"], name="sq", axes=[2, 3])],
        [3, 4, 5], [3], {}, 11),
    "Unsqueeze opset 11, GlobalAveragePool, Squeeze opset 13": (
        [helper.make_node("Unsqueeze", ["x"], ["u"], name="unsq", axes=[1]),
         helper.make_node("GlobalAveragePool", ["u"], ["g"], name="gap"),
         helper.make_node("Flatten", ["g"], ["y"], name="flat")],
        [4, 5], [1], {}, 11),
    "Transpose of size-1 axes, opset 13 Squeeze with axes input": (
        [helper.make_node("Transpose", ["x"], ["t"], name="tr", perm=[0, 2, 1, 3]),
         helper.make_node("Squeeze", ["t", "axes"], ["y"], name="sq")],
        [1, 3, 4], [3, 4], {"axes": np.array([2], np.int64)}, 13),
    "LogSoftmax, opset 11 (flattening from axis 1)": (
        [helper.make_node("LogSoftmax", ["x"], ["y"], name="lsm", axis=1)],
        [2, 3], [2, 3], {}, 11),
    "Conv + BatchNormalization (opset 9) + Relu + Sigmoid": (
        [helper.make_node("Conv", ["x", "K"], ["c"], name="conv", pads=[1, 1, 1, 1],
                          strides=[2, 2]),
         helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], name="bn",
                          epsilon=1e-3),
         helper.make_node("Relu", ["n"], ["r"], name="relu"),
         helper.make_node("Sigmoid", ["r"], ["y"], name="sig")],
        [2, 5, 5], [3, 3, 3], {"K": _w(3, 2, 3, 3), "s": _w(3), "b": _w(3), "m": _w(3),
                               "v": np.abs(_w(3)) + 0.5}, 9),
}


@pytest.mark.parametrize("batch", [1, "N"], ids=["batch 1", "symbolic batch"])
@pytest.mark.parametrize("case", HAND)
def test_hand_built_operators_match_onnxruntime(case, batch, tmp_path):
    nodes, shape, out, weights, opset = HAND[case]
    path = hand_model(tmp_path / "h.onnx", nodes, [batch, *shape], weights, opset,
                      output_dims=[batch, *out])
    net = load_onnx(path)
    assert net.output_shape == tuple(out) and net.batch == (1 if batch == 1 else None)
    assert_runs_like_onnxruntime(path, batch=4)


def test_dropout_in_training_mode_is_refused(tmp_path):
    nodes, shape, out, weights, opset = HAND["Dropout, opset 13, ratio and training_mode inputs"]
    path = hand_model(tmp_path / "t.onnx", nodes, ["N", *shape], {**weights,
                                                                  "train": np.bool_(True)},
                      opset, output_dims=["N", *out])
    with pytest.raises(NetworkError, match=r"Dropout node 'drop' \(index 0\): training_mode="
                                           r"true is not supported"):
        load_onnx(path)
