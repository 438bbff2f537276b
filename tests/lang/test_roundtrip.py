"""IR -> text -> IR is the identity (the printer writes what the checker reads back)."""
from __future__ import annotations

import pytest

import specrob
from specrob.lang import printer
from tests.conftest import SPECS

TRICKY = [
    "property t(e = 0.1):\n    forall z in ball(x0, e, 1): not (argmax(f(z)) != argmax(f(x0))) "
    "and (max(f(z)) - min(f(z)[0], -2 * f(z)[1]) <= 3 implies exists k != y: "
    "abs(softmax(f(z))[k] - 1 / (2 - softmax(f(x0))[k])) < 0.5)\n",
    "property u(a: real[output] = -1.5e-3, b: count = 3):\n    centres: train where correct, 7 points\n"
    "    domain: box(-1, 2)\n    forall x in ball(x0, 0.25, 2): f(x)[2] - (f(x)[1] - f(x)[0]) "
    ">= a * (b - (1 - b)) / (2 / b) or forall j: f(x)[j] == f(x0)[j] and y != 3\n",
    "score s = margin_area(d = 3)\n",
    'score m(sigma = 0.06):\n    centres: "pts.npz"\n    Q = manifold("gen.py", sigma)\n    H = id\n',
]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_standard_specs_round_trip(path):
    spec = specrob.load(path)
    assert specrob.loads(printer.spec(spec), path=spec.path) == spec


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_specs_round_trip(text):
    spec = specrob.loads(text)
    again = specrob.loads(printer.spec(spec))
    assert again == spec
    assert printer.spec(again) == printer.spec(spec)
