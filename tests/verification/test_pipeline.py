"""The verification pipeline's verdicts are sound, checked by exhaustive search on small
networks; results stream to results.jsonl and a rerun resumes."""
from __future__ import annotations

import copy

import json
import math

import numpy as np
import pytest

from specrob.runfolder import RunFolderError
import torch
from torch import nn

import specrob
from specrob.network import load_onnx_checked
from specrob.logic.compiled import CompiledProperty
from specrob.verification.pipeline import Verifier, VerifyConfig, confirm


class Clamp(nn.Module):
    def forward(self, z):
        return torch.clamp(z, -1.0, 1.0)


def small_net(inputs: int, seed: int, clamp: bool) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(inputs, 12), nn.ReLU(), nn.Linear(12, 3)]
    net = nn.Sequential(*layers, *([Clamp()] if clamp else []))
    with torch.no_grad():  # put the ReLU kinks across [0, 1]^n
        net[0].weight.mul_(6)
        net[0].bias.copy_(-(net[0].weight * torch.rand(12, inputs)).sum(-1))
    return net.eval()


def to_onnx(net: nn.Module, inputs: int, path) -> tuple:
    torch.onnx.export(net, (torch.rand(1, inputs),), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}},
                      dynamo=False)
    return load_onnx_checked(path)


def setup(tmp_path, prop_text: str, *, count: int, seed: int = 3, clamp: bool = False,
          inputs: int = 2, x_seed: int = 1):
    """A small network as ONNX, a property and `count` random centres labelled by the network."""
    net = small_net(inputs, seed=seed, clamp=clamp)
    ir_net, module = to_onnx(net, inputs, tmp_path / "net.onnx")
    prop = specrob.loads(f"property P = {prop_text}\n")["P"]
    x0 = torch.rand(count, inputs, generator=torch.Generator().manual_seed(x_seed),
                    dtype=torch.float64)
    with torch.no_grad():
        y = module(x0.float()).argmax(-1)
    return prop, ir_net, module, x0, y


def grid_violations(module, compiled, x0, y, per_axis=161):
    """Exhaustive search: does any point of a dense grid of the ball (plus its vertices),
    clipped to the box, violate the property?"""
    region = compiled.region
    n = x0.shape[-1]
    t = torch.linspace(-1, 1, per_axis, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(*([t] * n), indexing="ij"), -1).reshape(-1, n)
    out = []
    for c, label in zip(x0, y):
        pts = region.project(c + grid * region.eps, c.expand(len(grid), n))
        with torch.no_grad():
            fx = module(pts.float()).double()
        # f(x0) from the same batch (its middle row is x0 itself): otherwise float32 rounding
        # differences between batches make x = x0 look like a violation of a Lipschitz bound
        fx0 = fx[len(grid) // 2].expand(len(pts), -1)
        ok = compiled.holds_at(pts, fx, c.expand(len(pts), n), fx0,
                               torch.full((len(pts),), int(label)))
        out.append(bool((~ok).any()))
    return out


CASES = [  # (property, inputs, clamp)
    ("CR(eps = 0.06)", 2, False),
    ("CR(eps = 0.04, p = 2)", 2, True),
    ("CR(eps = 0.05, p = 1)", 2, False),
    ("SR(eps = 0.03, delta = 0.3)", 2, True),
    ("CR(eps = 0.04)", 1, True),
]


def assert_real_counterexample(v, module, row, x0, y) -> None:
    """A falsified centre carries a point of its region where the property fails, in float64
    (not by float32 rounding alone)."""
    i = row["index"]
    cx = torch.tensor([row["counterexample"]], dtype=torch.float64)
    assert v.compiled.region.contains(cx, x0[i:i + 1], tol=1e-9).all()
    exact = copy.deepcopy(module).double()
    with torch.no_grad():
        fx, fx0 = exact(cx), exact(x0[i:i + 1].double())
    assert not v.compiled.holds_at(cx, fx, x0[i:i + 1], fx0, y[i:i + 1]).item()


@pytest.mark.parametrize("prop_text,inputs,clamp", CASES)
def test_verdicts_agree_with_exhaustive_search(tmp_path, prop_text, inputs, clamp):
    prop, ir_net, module, x0, y = setup(tmp_path, prop_text, count=25, clamp=clamp,
                                        inputs=inputs)
    v = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                 VerifyConfig(timeout=30), out=tmp_path / "out")
    v.resume()
    rows = v.run()
    truth = grid_violations(module, v.compiled, x0, y)
    for row in rows:
        i = row["index"]
        if row["verdict"] == "verified":
            assert not truth[i], row
        elif row["verdict"] == "falsified":
            assert_real_counterexample(v, module, row, x0, y)
        else:
            assert row["reason"]
    decided = sum(r["verdict"] != "unknown" for r in rows)
    assert decided >= 0.8 * len(rows)  # Marabou decides small networks


@pytest.mark.parametrize("L", [20, 3])
def test_lipschitz_properties_are_verified_soundly_despite_the_tie_at_the_centre(tmp_path, L):
    """LR holds with equality at x = x0, which Marabou's non-strict negation would return;
    the box around x0 where the network is affine is proved from its Jacobian instead, and
    Marabou searches the rest of the ball."""
    prop, ir_net, module, x0, y = setup(tmp_path, f"LR(eps = 0.05, L = {L})", count=6, seed=3,
                                        clamp=False, inputs=2, x_seed=1)
    for semantics, timeout in (("real", 10), ("float32", 2)):
        v = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                     VerifyConfig(timeout=timeout, semantics=semantics), out=None)
        truth = grid_violations(module, v.compiled, x0, y)
        rows = v.run()
        for row in rows:
            assert row["verdict"] != "verified" or not truth[row["index"]]
            if row["verdict"] == "falsified":  # a real violation, possibly between grid points
                assert_real_counterexample(v, module, row, x0, y)
        if L == 20 and semantics == "real":  # far above the local slopes: all proved
            assert all(r["verdict"] == "verified" for r in rows)


def test_bounds_and_marabou_agree_where_both_decide(tmp_path):
    prop, ir_net, module, x0, y = setup(tmp_path, "CR(eps = 0.03)", count=30, seed=5,
                                        clamp=True, inputs=2, x_seed=2)
    verdicts = {}
    for backend in ("bounds", "marabou"):
        v = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                     VerifyConfig(backend=backend, steps=0, restarts=1), out=None)
        verdicts[backend] = {r["index"]: r["verdict"] for r in v.run()}
    both = [i for i in verdicts["bounds"]
            if verdicts["bounds"][i] != "unknown" and verdicts["marabou"][i] != "unknown"]
    assert both
    for i in both:
        assert verdicts["bounds"][i] == verdicts["marabou"][i] or \
            verdicts["bounds"][i] == "falsified"  # the attack falsifies before either runs


def test_results_stream_to_jsonl_and_a_rerun_skips_finished_points(tmp_path):
    prop, ir_net, module, x0, y = setup(tmp_path, "CR(eps = 0.05)", count=12, seed=3,
                                        clamp=False, inputs=2, x_seed=4)
    out = tmp_path / "out"
    first = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0[:6], y[:6],
                     VerifyConfig(), out=out)
    first.resume()
    first.run()
    first.close()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(6))
    again = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y, VerifyConfig(), out=out)
    assert again.resume() == 6
    calls = []
    again.progress = calls.append
    rows = again.run()
    assert len(rows) == 12 and len(calls) == 6  # only the new points were run
    again.close()
    with pytest.raises(RunFolderError, match="another run.*options.timeout.*--fresh"):
        Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                 VerifyConfig(timeout=1.0), out=out).resume()


@pytest.mark.slow
def test_constraint_satisfaction_never_exceeds_pgd_security_on_digits(tmp_path):
    from specrob.data import load_data
    from specrob.estimate.security import security_curve
    data = load_data("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10), Clamp())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for _ in range(60):
        idx = torch.randint(0, len(y), (128,))
        opt.zero_grad()
        nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
        opt.step()
    ir_net, module = to_onnx(net.eval(), 64, tmp_path / "digits.onnx")
    xt, yt = torch.tensor(data.x_test[:40]).double(), torch.tensor(data.y_test[:40])
    for eps in (0.005, 0.02):
        prop = specrob.loads(f"property P = CR(eps = {eps})\n")["P"]
        v = Verifier(prop, tmp_path / "digits.onnx", ir_net, module, xt, yt,
                     VerifyConfig(timeout=20), out=None)
        rows = v.run()
        cs = sum(r["verdict"] == "verified" for r in rows) / len(rows)
        (sec,) = security_curve(prop, module, xt.float(), yt, [eps])
        assert cs <= sec.security.value + 1e-12
        assert not math.isnan(cs)


def test_a_violation_made_only_by_float32_rounding_is_not_a_counterexample():
    """LR one ulp away from x0: the deployed model's rounding noise (1e-6 here) exceeds
    L |x - x0| ~ 1e-8, so onnxruntime alone would call it violated; the float64 network
    shows the slope is below L, and confirm refuses the point."""
    prop = specrob.loads("property P = LR(eps = 0.1, L = 3)")["P"]
    net = nn.Linear(2, 3).double()
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
        net.bias.zero_()
    compiled = CompiledProperty(prop, 2)
    x0 = np.array([[0.25, 0.5]])
    x = np.nextafter(x0.astype(np.float32), np.float32(1)).astype(np.float64)

    def noisy_oracle(points):  # float32 rounding noise on every output
        with torch.no_grad():
            return net(torch.tensor(points)).numpy() + 1e-6 * (points[:, :1] != x0[:, :1])

    y = np.array([0])
    assert confirm(compiled, noisy_oracle, x, x0, y).all()  # onnxruntime alone: "violated"
    assert not confirm(compiled, noisy_oracle, x, x0, y, exact=net).any()
    far = np.array([[0.35, 0.5]])  # a real violation needs a slope above L: none here
    assert not confirm(compiled, noisy_oracle, far, x0, y, exact=net).any()


# --- ties of strict inequalities, eps = 0, monotone verdicts (shared cases bughunt/08, 12, 13) --

def identity_net(tmp_path):
    """f(x) = x on [0, 1]^2: every CR boundary is a tie that a solver may return exactly."""
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(2))
        lin.bias.zero_()
    return to_onnx(lin.eval(), 2, tmp_path / "identity.onnx")


def corner_net(tmp_path, corner: float):
    """logits (2 relu(x_0 + x_1 - corner), 0, 0.1) on [0, 1]^3: class 2 everywhere except the
    corner x_0 + x_1 > corner + 0.05. Marabou's answers to CR's negation are the tie points
    on the corner's boundary, where onnxruntime still predicts class 2."""
    net = nn.Sequential(nn.Linear(3, 1), nn.ReLU(), nn.Linear(1, 3))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1.0, 0.0]]))
        net[0].bias.fill_(-corner)
        net[2].weight.copy_(torch.tensor([[2.0], [0.0], [0.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.0, 0.1]))
    return to_onnx(net.eval(), 3, tmp_path / "corner.onnx")


@pytest.mark.parametrize("corner", [1.8, 1.6])
def test_marabou_ties_are_searched_before_a_falsifiable_point_is_left_unknown(tmp_path, corner):
    ir_net, module = corner_net(tmp_path, corner)
    x0 = torch.tensor([[0.2, 0.3, 0.5], [0.5, 0.5, 0.5], [0.1, 0.9, 0.0], [0.0, 0.0, 1.0]],
                      dtype=torch.float64)
    y = torch.full((4,), 2)
    prop = specrob.loads("property P = CR(eps = 1)\n")["P"]  # the whole domain: false
    v = Verifier(prop, tmp_path / "corner.onnx", ir_net, module, x0, y,
                 VerifyConfig(backend="marabou", steps=0, restarts=1, timeout=10), out=None)
    rows = v.run()
    for row in rows:
        assert row["verdict"] == "falsified", row
        assert_real_counterexample(v, module, row, x0, y)


def test_an_attained_non_strict_bound_is_never_verified_nor_falsified(tmp_path):
    ir_net, module = identity_net(tmp_path)
    # max of x_0 on the ball around 0.7 of radius 0.05 is exactly 0.75
    prop = specrob.loads("property P(eps = 0.05):\n    forall x in ball(x0, eps): "
                         "f(x)[0] <= 0.75\n")["P"]
    x0 = torch.tensor([[0.7, 0.5]], dtype=torch.float64)
    for semantics in ("real", "float32"):
        v = Verifier(prop, tmp_path / "identity.onnx", ir_net, module, x0,
                     torch.zeros(1, dtype=torch.long),
                     VerifyConfig(timeout=10, semantics=semantics), out=None)
        (row,) = v.run()
        assert row["verdict"] == "unknown", row


@pytest.mark.parametrize("prop_text", ["LR(eps = {eps}, L = 20)", "LR(eps = {eps}, L = 0.5)",
                                       "CR(eps = {eps})", "SR(eps = {eps}, delta = 0.2)"])
def test_verdicts_are_monotone_in_eps_from_zero(tmp_path, prop_text):
    verdicts = []
    for eps in (0.0, 0.01, 0.05):
        prop, ir_net, module, x0, y = setup(tmp_path, prop_text.format(eps=eps), count=8,
                                            seed=3, inputs=2, x_seed=1)
        v = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                     VerifyConfig(timeout=10, semantics="real"), out=None)
        verdicts.append({r["index"]: r["verdict"] for r in v.run()})
    assert all(v == "verified" for v in verdicts[0].values()) or "CR" in prop_text
    for small, large in zip(verdicts, verdicts[1:]):
        for i in small:
            assert not (large[i] == "verified" and small[i] != "verified"), (small, large)
            assert not (small[i] == "falsified" and large[i] != "falsified"), (small, large)


def test_a_dead_marabou_worker_loses_no_centre(tmp_path):
    """--workers 2 with a pool worker that dies while taking its job: the job runs again in
    this process, and every centre gets its verdict (no BrokenProcessPool traceback)."""
    import os
    from specrob.lang import query as q

    class Deadly(q.Query):
        def __reduce__(self):  # unpickled in the pool worker: the worker dies there
            return (os._exit, (1,))

    prop, ir_net, module, x0, y = setup(tmp_path, "CR(eps = 0.05)", count=4, seed=3,
                                        inputs=2, x_seed=4)
    v = Verifier(prop, tmp_path / "net.onnx", ir_net, module, x0, y,
                 VerifyConfig(backend="marabou", steps=0, restarts=1, timeout=10, workers=2),
                 out=None)
    encoder_query = v.marabou_stage
    todo = [0, 1, 2, 3]
    from specrob.lang.encode import Centre, Encoder
    encoder = Encoder(prop, 2, 3)
    fx0 = v.oracle(x0.numpy())
    queries = {}
    for i in todo:
        query = encoder.query(Centre(x0[i].numpy(), int(y[i]), fx0[i]))
        queries[i] = Deadly(query.body, query.region, query.classes) if i == 1 else query
    encoder_query(todo, queries)
    assert sorted(v.done) == todo and all(r["verdict"] in ("verified", "falsified", "unknown")
                                          for r in v.done.values())
