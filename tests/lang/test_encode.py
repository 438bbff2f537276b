"""Encoding a property at a centre: the query's formula means the same as the property."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import specrob
from specrob.logic import CompiledProperty
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder, Unsupported

PROPERTIES = ["CR()", "CR(p = 2)", "SR(delta = 1.5)", "SR(delta = 1, q = 1)", "SR_label(delta = 2)",
              "LR(L = 3)", "LR(L = 3, p = 1, q = 1)"]
EXTRA = ["forall j != y: f(x)[y] - f(x)[j] >= 0.5",
         "y == 2 implies f(x)[2] > f(x)[0]",
         "argmax(f(x)) == argmax(f(x0)) or abs(f(x)[0] - f(x0)[1]) <= 0.3",
         "exists j: f(x)[j] >= 2 * f(x0)[j] + 3 * norm(x - x0, inf)"]


def random_points(n=4, m=3, count=300, seed=0):
    g = np.random.default_rng(seed)
    x0 = g.random(n)
    return x0, g.normal(size=m), g.integers(0, m), g.random((count, n)), 2 * g.normal(size=(count, m))


@pytest.mark.parametrize("text", [f"property P = {p}\n" for p in PROPERTIES] + [
    f"property P(eps = 0.1):\n    forall x in ball(x0, eps): {body}\n" for body in EXTRA])
def test_the_query_means_the_property(text):
    prop = specrob.loads(text)["P"]
    x0, fx0, y, xs, zs = random_points()
    query = Encoder(prop, 4, 3).query(Centre(x0, int(y), fx0))
    compiled = CompiledProperty(prop, 4)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    expected = compiled.holds_at(t(xs), t(zs), t(x0).expand(len(xs), 4),
                                 t(fx0).expand(len(xs), 3), torch.full((len(xs),), int(y)))
    got = [q.holds(query.body, z, x) for z, x in zip(zs, xs)]
    assert got == expected.tolist()
    assert not query.sufficient


def test_scr_becomes_a_sufficient_margin_condition():
    prop = specrob.loads("property P = SCR(eta = 0.6)\n")["P"]
    x0, fx0, y, xs, zs = random_points(m=4)
    query = Encoder(prop, 4, 4).query(Centre(x0, int(y), fx0))
    assert query.sufficient
    soft = torch.softmax(torch.tensor(zs), -1)[:, int(y)].numpy()
    for z, x, s in zip(zs, xs, soft):
        if q.holds(query.body, z, x):
            assert s >= 0.6  # the condition implies the property
    # at the margin log(3 * 0.6 / 0.4) exactly, softmax_y is at least 0.6
    margin = np.log(3 * 0.6 / 0.4)
    z = np.zeros(4)
    z[int(y)] = margin
    assert q.holds(query.body, z, x0) and torch.softmax(torch.tensor(z), 0)[int(y)] >= 0.6 - 1e-12


def test_linf_output_bounds_become_linear_atoms():
    prop = specrob.loads("property P = SR(delta = 2)\n")["P"]
    query = Encoder(prop, 4, 3).query(Centre(np.zeros(4), 0, np.array([0.1, 2.0, -1.0])))
    assert isinstance(query.body, q.And) and len(query.body.items) == 6
    assert all(a.is_linear_in_outputs() for a in query.body.items)


@pytest.mark.parametrize("body,reason", [
    ("norm(f(x) - f(x0), 2) <= 1", "l_2 norm"),
    ("softmax(f(x))[0] <= 0.5", "softmax"),
    ("f(x)[0] * f(x)[1] <= 1", "product"),
    ("max(f(x)) <= 1", "quantifier"),
])
def test_what_is_not_piecewise_linear_is_refused_with_a_reason(body, reason):
    prop = specrob.loads(f"property P(eps = 0.1):\n    forall x in ball(x0, eps): {body}\n")["P"]
    with pytest.raises(Unsupported, match=reason):
        Encoder(prop, 4, 3).query(Centre(np.zeros(4), 0, np.zeros(3)))
