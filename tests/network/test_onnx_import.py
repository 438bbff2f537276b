"""ONNX -> network IR -> torch: every supported operator computes what onnxruntime computes,
the IR is small and explicit, and everything else fails with a NetworkError that says why."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from specrob.network import (Add, Affine, AveragePool, Clip, Conv, Elementwise,
                             LeakyRelu, MaxPool, NetworkError, Relu, Reshape, Sigmoid, Softmax,
                             Tanh, check_against_onnxruntime, load_onnx, load_onnx_checked,
                             sizes, to_torch)

FLOAT = TensorProto.FLOAT
BATCH_SIZES = (1, 3, 8)


# --- building tiny ONNX models -------------------------------------------------------------

def w(*shape: int, seed: int = 0) -> np.ndarray:
    """Random float32 weights."""
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


@dataclass
class Model:
    """A one-input, one-output ONNX graph: nodes read "x" and write "y"."""

    nodes: list
    input_shape: tuple[int, ...]  # per sample; the batch dimension is symbolic
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 17
    output_rank: int = 2  # the declared output shape is (batch, ?, ...)

    def save(self, path: Path) -> Path:
        graph = helper.make_graph(
            self.nodes, "g",
            [helper.make_tensor_value_info("x", FLOAT, ["batch", *self.input_shape])],
            [helper.make_tensor_value_info("y", FLOAT, ["batch"] + [None] * (self.output_rank - 1))],
            initializer=[numpy_helper.from_array(np.asarray(v), k)
                         for k, v in self.weights.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  ir_version=8)
        path.write_bytes(model.SerializeToString())
        return path


def node(op: str, inputs: list[str], output: str, name: str | None = None, **attrs):
    return helper.make_node(op, inputs, [output], name=name or f"{op.lower()}_{output}",
                            **attrs)


def onnxruntime_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0].reshape(len(x), -1)


def assert_matches_onnxruntime(path: Path) -> None:
    """The imported torch module agrees with onnxruntime to 1e-5 on batches of several sizes
    (inputs in [-2, 2], so ReLUs and clips see both sides)."""
    net = load_onnx(path)
    module = to_torch(net)
    rng = np.random.default_rng(1)
    for batch in BATCH_SIZES:
        x = rng.uniform(-2, 2, (batch, *net.input_shape)).astype(np.float32)
        expected = onnxruntime_outputs(path, x)
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, net.output_size)
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * scale)


# --- one model per operator and the usual combinations -----------------------------------

def gemm_relu_gemm() -> Model:
    return Model([node("Gemm", ["x", "W1", "b1"], "h", transB=1),
                  node("Relu", ["h"], "r"),
                  node("Gemm", ["r", "W2", "b2"], "y", alpha=0.5, beta=2.0)],
                 (5,), {"W1": w(4, 5), "b1": w(4), "W2": w(4, 3), "b2": w(1, 3)})


def gemm_without_bias() -> Model:
    return Model([node("Gemm", ["x", "W"], "y", transB=1)], (5,), {"W": w(3, 5)})


def matmul_add() -> Model:
    return Model([node("MatMul", ["x", "W"], "h"), node("Add", ["h", "b"], "y")],
                 (5,), {"W": w(5, 3), "b": w(3)})


def matmul_on_matrix_samples() -> Model:
    return Model([node("MatMul", ["x", "W"], "y")], (3, 4), {"W": w(4, 2)}, output_rank=3)


def conv_bn_relu_maxpool_flatten_gemm() -> Model:
    return Model([node("Conv", ["x", "K", "kb"], "c", pads=[1, 1, 1, 1]),
                  node("BatchNormalization", ["c", "s", "bb", "mean", "var"], "n",
                       epsilon=1e-3),
                  node("Relu", ["n"], "r"),
                  node("MaxPool", ["r"], "p", kernel_shape=[2, 2], strides=[2, 2]),
                  node("Flatten", ["p"], "f"),
                  node("Gemm", ["f", "W", "b"], "y", transB=1)],
                 (2, 6, 6), {"K": w(3, 2, 3, 3), "kb": w(3), "s": w(3), "bb": w(3),
                             "mean": w(3), "var": np.abs(w(3)) + 0.5, "W": w(4, 27),
                             "b": w(4)})


def conv(**attrs) -> Model:
    group = attrs.get("group", 1)
    return Model([node("Conv", ["x", "K"], "c", **attrs), node("Flatten", ["c"], "y")],
                 (4, 7, 6), {"K": w(4, 4 // group, 3, 2)})


def pool(op: str, **attrs) -> Model:
    return Model([node(op, ["x"], "p", kernel_shape=[3, 2], **attrs),
                  node("Flatten", ["p"], "y")], (2, 7, 6))


def reshape_with_0_and_minus_1() -> Model:
    return Model([node("Reshape", ["x", "s1"], "a"),   # (2, 3, 4) -> (2, 12)
                  node("Reshape", ["a", "s2"], "b"),   # -> (24,), batch as -1
                  node("Gemm", ["b", "W"], "y", transB=1)],
                 (2, 3, 4), {"s1": np.array([0, 0, -1]), "s2": np.array([-1, 24]),
                             "W": w(3, 24)})


def flatten(axis: int) -> Model:
    return Model([node("Flatten", ["x"], "f", axis=axis),
                  node("Gemm", ["f", "W"], "y", transB=1)], (2, 3, 4), {"W": w(3, 24)})


def activation(op: str, opset: int = 17, **attrs) -> Model:
    return Model([node("Gemm", ["x", "W"], "h", transB=1), node(op, ["h"], "y", **attrs)],
                 (5,), {"W": 3 * w(4, 5)}, opset=opset)


def softmax_on_matrix_samples(axis: int, opset: int = 17) -> Model:
    return Model([node("Softmax", ["x"], "y", axis=axis)], (3, 4), opset=opset,
                 output_rank=3)


def clip(inputs: list[str], weights: dict, opset: int = 17, **attrs) -> Model:
    return Model([node("Clip", ["x", *inputs], "y", **attrs)], (6,), weights, opset=opset)


def clip_from_constant_nodes() -> Model:
    def constant(name: str, v: float):
        return helper.make_node("Constant", [], [name],
                                value=numpy_helper.from_array(np.float32(v)))

    return Model([constant("lo", -0.5), constant("hi", 0.5),
                  node("Clip", ["x", "lo", "hi"], "y")], (6,))


def residual(op: str) -> Model:
    """y = relu(x W1^T) + x W2^T (or minus): two branches of one input joined."""
    return Model([node("Gemm", ["x", "W1"], "a", transB=1), node("Relu", ["a"], "r"),
                  node("Gemm", ["x", "W2"], "b", transB=1), node(op, ["r", "b"], "y")],
                 (5,), {"W1": w(3, 5), "W2": w(3, 5, seed=1)})


def arithmetic_with_constants() -> Model:
    """Normalisation-style arithmetic: ((c1 - x) * c2 / 4 + c3) - c4 on images."""
    return Model([node("Sub", ["c1", "x"], "a"), node("Mul", ["a", "c2"], "b"),
                  node("Div", ["b", "four"], "c"), node("Add", ["c3", "c"], "d"),
                  node("Sub", ["d", "c4"], "y")],
                 (2, 3, 3), {"c1": w(1, 2, 1, 1), "c2": w(2, 3, 3), "four": np.float32(4),
                             "c3": w(3), "c4": w(1)}, output_rank=4)


def batchnorm_on_features() -> Model:
    return Model([node("BatchNormalization", ["x", "s", "b", "m", "v"], "y")], (4,),
                 {"s": w(4), "b": w(4), "m": w(4), "v": np.abs(w(4)) + 0.1})


def constant_and_identity() -> Model:
    return Model([helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(
                      w(5, 3), "W")),
                  node("Identity", ["W"], "W2"), node("Identity", ["x"], "x2"),
                  node("MatMul", ["x2", "W2"], "y")], (5,))


CASES = {
    "Gemm + Relu + Gemm (transB, alpha, beta, C of shape (1, n))": gemm_relu_gemm,
    "Gemm without bias": gemm_without_bias,
    "MatMul + Add": matmul_add,
    "MatMul on (3, 4) samples": matmul_on_matrix_samples,
    "Conv + BatchNorm + Relu + MaxPool + Flatten + Gemm": conv_bn_relu_maxpool_flatten_gemm,
    "Conv, stride 2": lambda: conv(strides=[2, 2]),
    "Conv, asymmetric pads": lambda: conv(pads=[0, 1, 2, 1]),
    "Conv, dilations": lambda: conv(dilations=[2, 1]),
    "Conv, group 2": lambda: conv(group=2, pads=[1, 1, 1, 1]),
    "Conv, SAME_UPPER": lambda: conv(auto_pad="SAME_UPPER", strides=[2, 1]),
    "Conv, SAME_LOWER": lambda: conv(auto_pad="SAME_LOWER"),
    "Conv, VALID": lambda: conv(auto_pad="VALID"),
    "MaxPool": lambda: pool("MaxPool"),
    "MaxPool, strides, pads, dilations": lambda: pool("MaxPool", strides=[2, 1],
                                                      pads=[1, 0, 1, 1], dilations=[1, 2]),
    "MaxPool, SAME_UPPER": lambda: pool("MaxPool", auto_pad="SAME_UPPER", strides=[2, 2]),
    "AveragePool": lambda: pool("AveragePool", strides=[2, 2]),
    "AveragePool, pads excluded": lambda: pool("AveragePool", pads=[1, 0, 0, 1]),
    "AveragePool, pads included": lambda: pool("AveragePool", pads=[1, 1, 0, 1],
                                               count_include_pad=1),
    "Reshape with 0 and -1": reshape_with_0_and_minus_1,
    "Flatten axis 1": lambda: flatten(1),
    "Flatten axis -3": lambda: flatten(-3),
    "Softmax": lambda: activation("Softmax"),
    "Softmax over axis 1 of (3, 4) samples": lambda: softmax_on_matrix_samples(1),
    "Softmax, opset 11, flattening from axis 1": lambda: softmax_on_matrix_samples(1, 11),
    "LeakyRelu": lambda: activation("LeakyRelu", alpha=0.2),
    "Sigmoid": lambda: activation("Sigmoid"),
    "Tanh": lambda: activation("Tanh"),
    "Clip, both bounds": lambda: clip(["lo", "hi"], {"lo": np.float32(-1),
                                                     "hi": np.float32(0.5)}),
    "Clip, max only": lambda: clip(["", "hi"], {"hi": np.float32(0.5)}),
    "Clip, no bounds": lambda: clip([], {}),
    "Clip, bounds from Constant nodes": clip_from_constant_nodes,
    "Clip, opset 9 attributes": lambda: clip([], {}, opset=9, min=-0.25, max=1.0),
    "Add of two branches": lambda: residual("Add"),
    "Sub of two branches": lambda: residual("Sub"),
    "Sub/Mul/Div/Add with constants": arithmetic_with_constants,
    "BatchNormalization on features": batchnorm_on_features,
    "Constant and Identity": constant_and_identity,
}


@pytest.mark.parametrize("case", CASES)
def test_imported_network_matches_onnxruntime(case, tmp_path):
    assert_matches_onnxruntime(CASES[case]().save(tmp_path / "model.onnx"))


# --- the IR --------------------------------------------------------------------------------

def kinds(model: Model, tmp_path: Path) -> list[type]:
    return [type(n) for n in load_onnx(model.save(tmp_path / "m.onnx")).nodes]


def test_an_mlp_is_affine_relu_affine_with_gemm_attributes_folded(tmp_path):
    model = gemm_relu_gemm()
    net = load_onnx(model.save(tmp_path / "m.onnx"))
    first, relu, last = net.nodes
    assert (type(first), type(relu), type(last)) == (Affine, Relu, Affine)
    np.testing.assert_array_equal(first.weight, model.weights["W1"])  # transB=1: as stored
    np.testing.assert_allclose(last.weight, 0.5 * model.weights["W2"].T)  # alpha, transB=0
    np.testing.assert_allclose(last.bias, 2.0 * model.weights["b2"][0])  # beta
    assert (first.name, first.op_type, first.inputs, first.shape) == ("gemm_h", "Gemm",
                                                                      ("x",), (4,))
    assert (net.input_shape, net.output_shape, sizes(net)) == ((5,), (3,), (5, 3))
    assert first.weight.dtype == np.float64 and not first.weight.flags.writeable


def test_matmul_then_add_is_one_affine_layer(tmp_path):
    model = matmul_add()
    (layer,) = load_onnx(model.save(tmp_path / "m.onnx")).nodes
    assert isinstance(layer, Affine) and layer.op_type == "MatMul+Add"
    np.testing.assert_array_equal(layer.weight, model.weights["W"].T)
    np.testing.assert_array_equal(layer.bias, model.weights["b"])


def test_constant_and_identity_fold_away(tmp_path):
    assert kinds(constant_and_identity(), tmp_path) == [Affine]


def test_a_chain_of_arithmetic_with_constants_is_one_elementwise_node(tmp_path):
    model = arithmetic_with_constants()
    (chain,) = load_onnx(model.save(tmp_path / "m.onnx")).nodes
    assert isinstance(chain, Elementwise) and chain.op_type == "Sub+Mul+Div+Add+Sub"
    assert chain.scale.shape == chain.shift.shape == chain.shape == (2, 3, 3)
    x = w(2, 3, 3, seed=9).astype(np.float64)
    c = {k: v.astype(np.float64) for k, v in model.weights.items()}
    expected = (c["c1"][0] - x) * c["c2"] / 4 + c["c3"] - c["c4"]
    np.testing.assert_allclose(x * chain.scale + chain.shift, expected, rtol=1e-12)


def test_each_operator_has_its_node_kind(tmp_path):
    assert kinds(conv_bn_relu_maxpool_flatten_gemm(), tmp_path) == [
        Conv, Relu, MaxPool, Reshape, Affine]  # the BatchNorm folds into the Conv
    assert kinds(pool("AveragePool"), tmp_path) == [AveragePool, Reshape]
    assert kinds(residual("Sub"), tmp_path) == [Affine, Relu, Affine, Add]
    for op, kind in [("LeakyRelu", LeakyRelu), ("Sigmoid", Sigmoid), ("Tanh", Tanh),
                     ("Softmax", Softmax), ("Clip", Clip)]:
        assert kinds(activation(op), tmp_path)[-1] is kind


def test_padding_is_explicit_in_the_ir(tmp_path):
    (same, _) = load_onnx(conv(auto_pad="SAME_UPPER", strides=[2, 1]).save(
        tmp_path / "m.onnx")).nodes
    assert same.pads == (1, 0, 1, 1) and same.shape == (4, 4, 6)  # (top, left, bottom, right)


def test_clip_bounds_come_from_attributes_before_opset_11_and_inputs_after(tmp_path):
    (old,) = load_onnx(clip([], {}, opset=9, min=-0.25).save(tmp_path / "a.onnx")).nodes
    (new,) = load_onnx(clip(["", "hi"], {"hi": np.float32(0.5)}).save(
        tmp_path / "b.onnx")).nodes
    assert (old.low, old.high) == (-0.25, None) and (new.low, new.high) == (None, 0.5)


def test_opset_11_softmax_flattens_the_trailing_axes(tmp_path):
    net = load_onnx(softmax_on_matrix_samples(1, opset=11).save(tmp_path / "m.onnx"))
    assert [(type(n), n.shape) for n in net.nodes] == [
        (Reshape, (12,)), (Softmax, (12,)), (Reshape, (3, 4))]


def test_batchnorm_keeps_its_statistics_and_offers_scale_and_shift(tmp_path):
    model = batchnorm_on_features()
    (bn,) = load_onnx(model.save(tmp_path / "m.onnx")).nodes
    a, b = bn.scale_shift()
    x = w(4, seed=5).astype(np.float64)
    np.testing.assert_allclose(a * x + b, (x - bn.mean) / np.sqrt(bn.var + bn.epsilon)
                               * bn.scale + bn.bias)
    np.testing.assert_array_equal(bn.mean, model.weights["m"])


# --- networks exported from torch ----------------------------------------------------------

def export(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (example,), str(path), input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"},
                                                                 "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return path


class Clamp(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.clamp(z, -100.0, 100.0)


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3), Clamp())
    return mlp, export(mlp, torch.rand(1, 12), tmp_path_factory.mktemp("mlp") / "mlp.onnx")


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, stride=2), nn.ReLU(),
                        nn.AvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    with torch.no_grad():  # non-trivial statistics, so the exporter's BatchNorm folding shows
        cnn[1].running_mean.uniform_(-1, 1)
        cnn[1].running_var.uniform_(0.5, 2)
    return cnn, export(cnn, torch.rand(1, 1, 8, 8), tmp_path_factory.mktemp("cnn") / "cnn.onnx")


@pytest.mark.parametrize("exported", ["mlp_file", "cnn_file"])
def test_torch_exports_import_and_compute_the_original_network(exported, request):
    original, path = request.getfixturevalue(exported)
    net, module = load_onnx_checked(path)
    x = torch.rand(7, *net.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(module(x), original.eval()(x), rtol=0, atol=1e-5)
    assert_matches_onnxruntime(path)


def test_the_exported_clamp_is_a_clip_with_constant_bounds(mlp_file):
    net = load_onnx(mlp_file[1])
    assert [type(n) for n in net.nodes] == [Affine, Relu, Affine, Clip]
    assert (net.nodes[-1].low, net.nodes[-1].high) == (-100.0, 100.0)


def test_a_module_that_differs_from_the_file_is_caught(mlp_file, tmp_path):
    net = load_onnx(mlp_file[1])
    other = export(nn.Sequential(nn.Linear(12, 3)), torch.rand(1, 12), tmp_path / "o.onnx")
    x = np.random.default_rng(0).random((4, 12))
    assert check_against_onnxruntime(mlp_file[1], net, to_torch(net), x) <= 1e-5
    with pytest.raises(NetworkError, match=r"differs from onnxruntime by .* \(sample \d+, "
                                           r"output \d+: torch .*, onnxruntime .*\)"):
        check_against_onnxruntime(other, net, to_torch(net), x)


# --- the torch module ----------------------------------------------------------------------

def test_flattened_inputs_are_accepted_for_image_shaped_networks(cnn_file):
    _, module = load_onnx_checked(cnn_file[1])
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(module(x.reshape(5, 64)), module(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, 1, 8, 8\) or "
                                         r"\(B, 64\)"):
        module(torch.rand(5, 63))


def test_input_gradients_flow_through_the_module(mlp_file):
    _, module = load_onnx_checked(mlp_file[1])
    x = torch.rand(6, 12, requires_grad=True)
    module(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).any()


def test_weights_are_float32_buffers_not_parameters(cnn_file):
    _, module = load_onnx_checked(cnn_file[1])
    assert list(module.parameters()) == []
    assert {b.dtype for b in module.buffers()} == {torch.float32}
    x = torch.rand(2, 64, dtype=torch.float64)
    assert module.double()(x).dtype == torch.float64  # .to() converts every weight


# --- what is not supported -----------------------------------------------------------------

@pytest.mark.parametrize("op, hint", [("Cos", "replace it by Relu"),
                                      ("LSTM", "specrob handles feed-forward classifiers only"),
                                      ("Round", "replace it by supported operators, or "
                                                "re-export")])
def test_an_unsupported_operator_is_named_with_its_node(op, hint, tmp_path):
    path = Model([node("Gemm", ["x", "W"], "h", transB=1),
                  helper.make_node(op, ["h"], ["y"], name=f"{op.lower()}_1")],
                 (5,), {"W": w(3, 5)}).save(tmp_path / "model.onnx")
    with pytest.raises(NetworkError, match=rf"model.onnx: operator '{op}' \(node "
                                           rf"'{op.lower()}_1', index 1\) is not supported: "
                                           rf"{hint}.*\. Supported on the data: Gemm, MatMul, "
                                           rf".*Identity"):
        load_onnx(path)


REFUSED = {
    "Mul of two variables": (
        Model([node("Mul", ["x", "x"], "y", name="square")], (5,)),
        r"Mul node 'square' \(index 0\): Mul of two variable values is not supported"),
    "MatMul of two variables": (
        Model([node("MatMul", ["x", "x"], "y", name="mm")], (5, 5)),
        r"MatMul node 'mm' \(index 0\): MatMul of two variable values is not supported"),
    "division by a variable": (
        Model([node("Div", ["one", "x"], "y", name="inv")], (5,), {"one": np.float32(1)}),
        r"Div node 'inv' \(index 0\): division by a variable value is not supported"),
    "MaxPool ceil_mode": (
        Model([node("MaxPool", ["x"], "y", name="mp", kernel_shape=[2, 2], ceil_mode=1)],
              (1, 5, 5)),
        r"MaxPool node 'mp' \(index 0\): ceil_mode=1 is not supported"),
    "BatchNorm in training mode": (
        Model([node("BatchNormalization", ["x", "s", "s", "s", "s"], "y", name="bn",
                    training_mode=1)], (3,), {"s": np.ones(3, np.float32)}),
        r"BatchNormalization node 'bn' \(index 0\): training_mode=1 is not supported"),
    "Reshape mixing the batch": (
        Model([node("Reshape", ["x", "s"], "y", name="rs")], (6,), {"s": np.array([-1, 2])}),
        r"Reshape node 'rs' \(index 0\): a reshape of per-sample shape \(6,\) to \(-1, 2\) would mix"),
    "Flatten merging the batch": (
        Model([node("Flatten", ["x"], "y", name="fl", axis=2)], (2, 3)),
        r"Flatten node 'fl' \(index 0\): Flatten with axis 2 merges the batch dimension"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsupported_uses_of_supported_operators_are_refused_by_node(case, tmp_path):
    model, message = REFUSED[case]
    with pytest.raises(NetworkError, match=message):
        load_onnx(model.save(tmp_path / "model.onnx"))


def save_graph(path: Path, inputs: list, outputs: list, nodes: list) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                       ir_version=8).SerializeToString())
    return path


def value(name: str, shape) -> object:
    return helper.make_tensor_value_info(name, FLOAT, shape)


def test_two_inputs_two_outputs_and_dynamic_shapes_are_refused(tmp_path):
    two_inputs = save_graph(tmp_path / "a.onnx", [value("x", ["b", 3]), value("z", ["b", 3])],
                            [value("y", ["b", 3])], [node("Add", ["x", "z"], "y")])
    two_outputs = save_graph(tmp_path / "b.onnx", [value("x", ["b", 3])],
                             [value("y", ["b", 3]), value("r", ["b", 3])],
                             [node("Relu", ["x"], "r"), node("Sigmoid", ["x"], "y")])
    dynamic = save_graph(tmp_path / "c.onnx", [value("x", ["b", "n"])], [value("y", ["b", 3])],
                         [node("Relu", ["x"], "y")])
    fixed_batch = save_graph(tmp_path / "d.onnx", [value("x", [4, 3])], [value("y", ["b", 3])],
                             [node("Relu", ["x"], "y")])
    with pytest.raises(NetworkError, match=r"a.onnx: the model has 2 inputs besides its "
                                           r"weights \(x, z\); specrob needs exactly one"):
        load_onnx(two_inputs)
    with pytest.raises(NetworkError, match=r"b.onnx: the model has 2 outputs \(y, r\)"):
        load_onnx(two_outputs)
    with pytest.raises(NetworkError, match=r"c.onnx: input 'x' has a dynamic dimension "
                                           r"\('n'\) at axis 1; only the batch"):
        load_onnx(dynamic)
    with pytest.raises(NetworkError, match=r"fixed batch size of 4"):
        load_onnx(fixed_batch)


def test_a_fixed_batch_of_one_is_treated_as_the_batch(tmp_path):
    path = save_graph(tmp_path / "one.onnx", [value("x", [1, 3])], [value("y", [1, 3])],
                      [node("Relu", ["x"], "y")])
    net, module = load_onnx_checked(path)
    assert net.batch == 1 and module(torch.rand(4, 3)).shape == (4, 3)


def test_a_missing_file_and_a_file_that_is_not_onnx_are_refused(tmp_path):
    with pytest.raises(NetworkError, match=r"nowhere.onnx: no such file"):
        load_onnx(tmp_path / "nowhere.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("hello, this is not a network\n")
    with pytest.raises(NetworkError, match=r"notes.onnx: not an ONNX model"):
        load_onnx(text)
    broken = save_graph(tmp_path / "broken.onnx", [value("x", ["b", 3])], [value("y", ["b", 3])],
                        [node("Relu", ["nothing"], "y")])
    with pytest.raises(NetworkError, match=r"broken.onnx: not a valid ONNX model"):
        load_onnx(broken)
