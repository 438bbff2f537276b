"""A final Softmax / LogSoftmax (issue 18 item 5): stripped where the property compares outputs
of f(x) order-wise only (CR, targeted argmax), kept where it needs the values (SR on
probabilities), with verdicts that stay sound either way."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import specrob
from specrob.estimate.security import security_curve
from specrob.search.attacks import attack_model, default_attacks
from specrob.lang.encode import Centre, Encoder
from specrob.lang.query import query_order_only
from specrob.lang.walk import order_only
from specrob.network.final_layer import final_monotone
from specrob.verification.pipeline import Verifier, VerifyConfig
from tests.verification.test_pipeline import assert_real_counterexample, grid_violations, small_net, \
    to_onnx


def nets(tmp_path, last: nn.Module, *, inputs: int = 2, seed: int = 3, scale: float = 1.0):
    """The same classifier as logits.onnx and with `last` appended (probs.onnx)."""
    body = small_net(inputs, seed=seed, clamp=False)
    with torch.no_grad():
        body[2].weight.mul_(scale)
        body[2].bias.mul_(scale)
    logits = to_onnx(body, inputs, tmp_path / "logits.onnx")
    probs = to_onnx(nn.Sequential(body, last).eval(), inputs, tmp_path / "probs.onnx")
    return logits, probs


def centres(module, count: int, inputs: int = 2, seed: int = 1):
    x0 = torch.rand(count, inputs, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x0.float()).argmax(-1)
    return x0, y


def verdicts(tmp_path, name, ir_net, module, prop, x0, y, **config):
    v = Verifier(prop, tmp_path / f"{name}.onnx", ir_net, module, x0, y,
                 VerifyConfig(timeout=30, **config), out=None)
    return v, {r["index"]: r for r in v.run()}


def test_final_softmax_is_found_and_stripped(tmp_path):
    (logits, _), (probs, _) = nets(tmp_path, nn.Softmax(dim=1))
    assert final_monotone(logits) is None
    final = final_monotone(probs)
    assert final.kind == "Softmax"
    assert final.logits.output_size == probs.output_size
    assert not any(type(n).__name__ == "Softmax" for n in final.logits.nodes)


@pytest.mark.parametrize("last", [nn.Softmax(dim=1), nn.LogSoftmax(dim=1)])
def test_cr_verdicts_are_the_same_with_and_without_the_final_layer(tmp_path, last):
    (ln, lm), (pn, pm) = nets(tmp_path, last)
    prop = specrob.loads("property P = CR(eps = 0.06)\n")["P"]
    x0, y = centres(lm, 25)
    _, plain = verdicts(tmp_path, "logits", ln, lm, prop, x0, y)
    v, wrapped = verdicts(tmp_path, "probs", pn, pm, prop, x0, y)
    assert {i: r["verdict"] for i, r in plain.items()} == \
        {i: r["verdict"] for i, r in wrapped.items()}
    counts = [sum(r["verdict"] == "verified" for r in rows.values()) for rows in (plain, wrapped)]
    assert counts[0] == counts[1] > 0
    assert all(r["verdict"] != "unknown" for r in wrapped.values())
    kind = type(last).__name__
    for r in wrapped.values():
        assert f"final {kind} stripped" in r["note"]
        if r["verdict"] == "falsified":  # a real counterexample of the model with the layer
            assert_real_counterexample(v, pm, r, x0, y)
    truth = grid_violations(pm, v.compiled, x0, y)
    assert all(not truth[i] for i, r in wrapped.items() if r["verdict"] == "verified")


def test_sr_on_probabilities_keeps_the_softmax_and_stays_sound(tmp_path):
    (_, _), (pn, pm) = nets(tmp_path, nn.Softmax(dim=1), scale=4.0)
    prop = specrob.loads("property P = SR(eps = 0.05, delta = 0.1)\n")["P"]
    x0, y = centres(pm, 20)
    v, rows = verdicts(tmp_path, "probs", pn, pm, prop, x0, y)
    truth = grid_violations(pm, v.compiled, x0, y)
    for i, r in rows.items():
        assert "stripped" not in (r.get("note") or "")
        if r["verdict"] == "verified":
            assert not truth[i], r
        elif r["verdict"] == "falsified":
            assert_real_counterexample(v, pm, r, x0, y)
        else:
            assert "final Softmax kept" in r["reason"]
    assert any(r["verdict"] != "unknown" for r in rows.values())


def test_saturated_softmax_does_not_hide_violations_from_the_attacks(tmp_path):
    """Shared case 06: a confident classifier whose float32 probabilities are one-hot; its CR
    security through the probabilities equals that through its logits."""
    (_, lm), (_, pm) = nets(tmp_path, nn.Softmax(dim=1), scale=2000.0, seed=5)
    prop = specrob.loads("property P = CR(eps = 0.1)\n")["P"]
    x0, y = centres(lm, 60, seed=2)
    x0 = x0.float()
    search, note = attack_model(prop, pm)
    assert search is not None and "final Softmax stripped" in note
    eps = [0.02, 0.05, 0.1]
    attacks = default_attacks(10, 1)
    plain = security_curve(prop, lm, x0, y, eps, attacks=attacks)
    through = security_curve(prop, pm, x0, y, eps, attacks=attacks, search_model=search)
    assert [r.security.value for r in through] == [r.security.value for r in plain]
    assert plain[-1].security.value < 1.0


def test_which_properties_allow_stripping():
    spec = specrob.loads(
        "property CR1 = CR(eps = 0.1)\n"
        "property SR1 = SR(eps = 0.1, delta = 0.1)\n"
        "property T(eps: nonneg[input] = 0.1):\n"
        "    forall x in ball(x0, eps, inf):\n"
        "        argmax(f(x)) == 2\n"
        "property M(eps: nonneg[input] = 0.1):\n"
        "    forall x in ball(x0, eps, inf):\n"
        "        f(x)[y] - f(x)[0] >= 0.5\n")
    assert order_only(spec["CR1"].body) and order_only(spec["T"].body)
    assert not order_only(spec["SR1"].body) and not order_only(spec["M"].body)
    rng = np.random.default_rng(0)
    for name, expected in (("CR1", True), ("T", True), ("SR1", False), ("M", False)):
        query = Encoder(spec[name], 2, 3).query(Centre(rng.random(2), 1, rng.random(3)))
        assert query_order_only(query.body, "Softmax") is expected, name
    # log-softmax shifts every output by the same number: zero-sum rows are unchanged
    query = Encoder(spec["M"], 2, 3).query(Centre(rng.random(2), 1, rng.random(3)))
    assert query_order_only(query.body, "LogSoftmax")


def test_a_softmax_per_row_of_a_matrix_is_not_stripped(tmp_path):
    """softmax over the last axis of a (2, 3) output is monotone within each row only."""
    class Rows(nn.Module):
        def forward(self, x):
            z = nn.functional.linear(x, torch.arange(12.0).reshape(6, 2))
            return torch.softmax(z.reshape(-1, 2, 3), -1).reshape(-1, 6)

    net, _ = to_onnx(Rows(), 2, tmp_path / "rows.onnx")
    assert [type(n).__name__ for n in net.nodes][-2] == "Softmax"
    assert final_monotone(net) is None


def test_score_attacks_on_the_label_search_the_logits(tmp_path):
    """The H = indicator scores' label attack: the same findings through a saturated softmax
    (an nn.Sequential ending in nn.Softmax) as through the logits."""
    from specrob.estimate.scores import _attack_changes_label
    from specrob.search.region import Region
    body = small_net(2, seed=5, clamp=False)
    with torch.no_grad():
        body[2].weight.mul_(2000)
        body[2].bias.mul_(2000)
    probs = nn.Sequential(body, nn.Softmax(dim=1)).eval()
    x0, y = centres(body, 40, seed=2)
    x0 = x0.float()
    region = Region(0.1, float("inf"), 0.0, 1.0)
    torch.manual_seed(0)
    plain = _attack_changes_label(body, x0, y, region, 10)
    torch.manual_seed(0)
    through = _attack_changes_label(probs, x0, y, region, 10)
    assert plain.any() and torch.equal(plain, through)
