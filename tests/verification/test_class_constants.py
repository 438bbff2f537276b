"""Constant class indices in every position the language allows (`argmax(f(x)) == k`, `!= k`,
negated, inside implications and disjunctions, `f(x)[k]`), generated from small grammar
pieces and run through every back end: check, the loss, the attack, bounds + Marabou (with
verdicts checked by exhaustive search) and the VNN-LIB writer (shared case
newcomer/argmax_ne_const_crash)."""
from __future__ import annotations


import hypothesis.strategies as st
import torch
from hypothesis import HealthCheck, given, settings

import specrob
from specrob.logic.compiled import CompiledProperty
from specrob.lang.encode import Centre, Encoder, Unsupported
from specrob.verification.pipeline import Verifier, VerifyConfig
from specrob.verification.vnnlib import VnnlibExportError, vnnlib_text
from tests.verification.test_pipeline import grid_violations, small_net, to_onnx

ATOMS = st.sampled_from(["argmax(f(x)) == {k}", "argmax(f(x)) != {k}", "f(x)[{k}] <= f(x)[y]",
                         "f(x)[{k}] < f(x)[y] + 1", "argmax(f(x)) == y"])
BODIES = st.recursive(
    st.tuples(ATOMS, st.integers(0, 2)).map(lambda a: a[0].format(k=a[1])),
    lambda inner: st.one_of(
        inner.map(lambda b: f"not ({b})"),
        st.tuples(inner, inner, st.sampled_from(["and", "or", "implies"]))
          .map(lambda t: f"({t[0]}) {t[2]} ({t[1]})")),
    max_leaves=4)

_NET = {}


def network(tmp_path_factory):
    if "net" not in _NET:
        path = tmp_path_factory.mktemp("classes") / "net.onnx"
        ir_net, module = to_onnx(small_net(2, seed=3, clamp=False), 2, path)
        _NET["net"] = (path, ir_net, module)
    return _NET["net"]


@given(BODIES)
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
def test_constant_classes_work_in_every_back_end(tmp_path_factory, body):
    spec = specrob.loads(f"property P(eps = 0.05):\n    forall x in ball(x0, eps, inf):\n"
                         f"        {body}\n")
    prop = spec["P"]
    path, ir_net, module = network(tmp_path_factory)
    x0 = torch.rand(6, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = module(x0.float()).argmax(-1)
    # the loss and the attack
    compiled = CompiledProperty(prop, 2)
    loss = specrob.constraint_loss(spec, module, steps=3)(x0.float(), y)
    assert torch.isfinite(loss)
    x_star = compiled.worst_point(module, x0.float(), y, "pgd", steps=3)
    assert x_star.shape == (6, 2)
    # bounds + Marabou, against exhaustive search
    v = Verifier(prop, path, ir_net, module, x0, y, VerifyConfig(timeout=5, semantics="real"),
                 out=None)
    truth = grid_violations(module, v.compiled, x0, y)
    for row in v.run():
        if row["verdict"] == "verified":
            assert not truth[row["index"]], (body, row)
    # the VNN-LIB writer: states the query, or refuses it with a reason
    encoder = Encoder(prop, 2, 3)
    with torch.no_grad():
        fx0 = module(x0.float()).double().numpy()
    try:
        text = vnnlib_text(encoder.query(Centre(x0[0].numpy(), int(y[0]), fx0[0])))
        assert "(declare-const X_0 Real)" in text
    except (Unsupported, VnnlibExportError) as error:
        assert str(error)


def test_a_body_that_is_trivially_true_at_some_centres_is_verified_there(tmp_path_factory):
    """`f(x)[2] <= f(x)[y]` is true by itself where y = 2: the attack has nothing to search
    (it used to fail asking a constant for its gradient)."""
    spec = specrob.loads("property P(eps = 0.05):\n    forall x in ball(x0, eps, inf):\n"
                         "        f(x)[2] <= f(x)[y]\n")
    path, ir_net, module = network(tmp_path_factory)
    x0 = torch.rand(40, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = torch.full((40,), 2)
    rows = Verifier(spec["P"], path, ir_net, module, x0, y,
                    VerifyConfig(timeout=5, semantics="real"), out=None).run()
    assert all(r["verdict"] == "verified" for r in rows)
