"""The attack stage of `specrob verify`: the margin attack (one restart per disjunct of the
violation, APGD-like steps, `specrob.search.query_attack`) followed by PGD finds at least what
PGD alone finds, and every counterexample is real (issue 10, item 4)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from specrob.data import load_data
from specrob.lang.loader import load, overrides_from_cli
from specrob.network import load_onnx_checked
from specrob.search.query_attack import _batched_margins, truth_margin
from specrob.lang import query as q
from specrob.verification.pipeline import Verifier, VerifyConfig
from tests.conftest import REPO


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory):
    """A digits MLP 64-16-10 trained for 3 epochs, exported to ONNX."""
    data = load_data("digits")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = torch.tensor(data.x_train), torch.tensor(data.y_train)
    for _ in range(3):
        for i in range(0, len(y), 64):
            opt.zero_grad()
            F.cross_entropy(net(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    path = tmp_path_factory.mktemp("net") / "net.onnx"
    torch.onnx.export(net.eval(), (torch.rand(1, 64),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                      dynamo=False)
    return path


def falsified(path, eps: float, **config):
    prop = load(REPO / "specs" / "cr.rspec", overrides_from_cli([f"eps={eps}"])).properties[0]
    data = load_data("digits")
    net, module = load_onnx_checked(path)
    x0, y = torch.tensor(data.x_test[:80]), torch.tensor(data.y_test[:80])
    verifier = Verifier(prop, path, net, module, x0, y, VerifyConfig(**config))
    todo = list(range(len(y)))
    queries, _ = verifier.encode(todo)
    verifier.attack_stage(todo, queries)
    rows = {i: r for i, r in verifier.done.items() if r["verdict"] == "falsified"}
    return rows, x0.double().numpy(), y.numpy()


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_the_margin_attack_finds_what_pgd_finds_and_every_counterexample_is_real(digits_net,
                                                                                  eps):
    old, _, _ = falsified(digits_net, eps, attack="pgd", restarts=2)
    new, x0, y = falsified(digits_net, eps)  # the default: margin attack, then PGD
    assert len(new) >= len(old) > 0
    import onnxruntime as ort
    session = ort.InferenceSession(str(digits_net))
    for i, row in new.items():
        x = np.asarray(row["counterexample"])
        assert np.abs(x - x0[i]).max() <= eps and x.min() >= 0 and x.max() <= 1
        (logits,) = session.run(None, {"x": x[None].astype(np.float32)})
        assert logits[0].argmax() != y[i] or logits[0][y[i]] <= np.delete(logits[0], y[i]).max()


def test_batched_margins_equal_the_formula_margins():
    """The vectorised margin of linear DNF targets is `truth_margin` (And: min, Or: max)."""
    rng = np.random.default_rng(0)
    m, n = 4, 3

    def atom(op):
        lin = q.Affine(rng.normal(size=(1, m)), rng.normal(size=(1, n)), rng.normal(size=1))
        return q.Atom(lin, (), op)

    targets = [[q.Or((atom(">"), q.And((atom("<="), atom(">="))))), atom("<")],
               [q.And((atom(">"), q.Or((atom("<"), atom(">"))))), q.Or((atom(">="),
                                                                        q.Const(False)))]]
    batched = _batched_margins(targets, torch.float64)
    assert batched is not None
    z, x = torch.tensor(rng.normal(size=(4, m))), torch.tensor(rng.normal(size=(4, n)))
    expected = torch.stack([truth_margin(t, z[k:k + 1], x[k:k + 1])[0]
                            for k, t in enumerate(t for ts in targets for t in ts)])
    torch.testing.assert_close(batched(z, x), expected)
    norm = q.Atom(q.Affine(np.zeros((1, m)), np.zeros((1, n)), np.zeros(1)),
                  (q.NormTerm(1.0, q.Affine(np.eye(m), np.zeros((m, n)), np.zeros(m)),
                              math.inf),), "<=")
    assert _batched_margins([[norm]], torch.float64) is None  # norms: the general path
