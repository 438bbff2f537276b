"""L2-nonexpansive networks are 1-Lipschitz in l_2 whatever their weights: checked against the
exact spectral norm (torch.linalg), against gradient ascent on the ratio ||f(x) - f(x')|| /
||x - x'||, and through the ONNX export and the verifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import specrob
from specrob.network.model_file import build_model
from specrob.network.nonexpansive import (NonexpansiveLinear, l2_nonexpansive_mlp,
                                          spectral_bound)
from specrob.training.export import export_onnx
from tests.conftest import REPO


@pytest.mark.parametrize("shape, scale", [((5, 9), 1.0), ((9, 5), 30.0), ((40, 40), 0.01)])
def test_the_applied_weight_has_spectral_norm_at_most_one(shape, scale):
    torch.manual_seed(0)
    layer = NonexpansiveLinear(shape[1], shape[0])
    with torch.no_grad():
        layer.weight.mul_(scale)
    w = layer.weight.detach().double()
    assert spectral_bound(w).item() >= torch.linalg.matrix_norm(w, 2).item() ** 2 - 1e-9
    assert torch.linalg.matrix_norm(layer.applied_weight().detach(), 2).item() <= 1 + 1e-6
    if scale == 0.01:  # already nonexpansive: left as it is
        torch.testing.assert_close(layer.applied_weight(), layer.weight)


def worst_ratio(f, x: torch.Tensor) -> float:
    """Gradient ascent on ||f(x) - f(x')|| / ||x - x'|| over x' near each row of x."""
    x2 = (x + 0.1 * torch.randn_like(x)).requires_grad_(True)
    opt = torch.optim.Adam([x2], lr=0.01)
    worst = 0.0
    for _ in range(200):
        ratio = (f(x) - f(x2)).norm(dim=1) / (x - x2).norm(dim=1)
        worst = max(worst, ratio.max().item())
        opt.zero_grad()
        (-ratio.sum()).backward()
        opt.step()
    return worst


def test_the_network_is_one_lipschitz_in_l2_even_with_large_weights():
    torch.manual_seed(1)
    net = l2_nonexpansive_mlp(12, 4, hidden=(16, 16)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(50.0)
    x = torch.randn(128, 12, dtype=torch.float64)
    assert worst_ratio(net, x) <= 1 + 1e-9

    # the same search on the same raw weights without the normalisation finds ratios far
    # above 1 (the oracle can fail)
    def raw(v):
        for layer in net:
            if isinstance(layer, NonexpansiveLinear):
                w, b = layer.weight, layer.bias
                if layer.two_sided:
                    w, b = torch.cat([w, -w]), torch.cat([b, -b])
                v = torch.nn.functional.linear(v, w, b)
            else:
                v = layer(v)
        return v
    assert worst_ratio(raw, x) > 10


def test_the_example_model_file_exports_and_verifies_within_its_lipschitz_radius(tmp_path):
    import onnx
    torch.manual_seed(2)
    net = build_model(REPO / "examples" / "l2nn_mlp.py", 64, 10)
    x = torch.rand(8, 64)
    export_onnx(net, x, tmp_path / "model.onnx")
    # the weight normalisation is a computation on initializers: the importer folds it
    ops = {node.op_type for node in onnx.load(tmp_path / "model.onnx").graph.node}
    assert {"Sqrt", "Concat"} <= ops
    # l_2 radius below margin / sqrt(2): the Lipschitz bound proves it, so must the verifier
    with torch.no_grad():
        top2 = net(x).topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).min().item()
    eps = float(0.9 * margin / np.sqrt(2))
    spec = specrob.loads(f"property P = CR(eps = {eps!r}, p = 2)\n")
    with torch.no_grad():
        labels = net(x).argmax(-1)
    result = specrob.verify(tmp_path / "model.onnx", spec, centres=(x, labels),
                            out=tmp_path / "verify", progress=False)
    assert {r["verdict"] for r in result.rows} == {"verified"}
