"""Which back ends handle a property exactly, soundly or not at all (DESIGN §4)."""
from __future__ import annotations

import pytest

import specrob
from specrob.lang.capabilities import backends


def levels(text: str) -> dict[str, str]:
    prop = specrob.loads(text)["P"]
    return {k: v.level for k, v in backends(prop).items()}


@pytest.mark.parametrize("instance,expected", [
    ("CR()", dict(bounds="exact", marabou="exact", vnnlib="exact")),
    ("CR(p = 2)", dict(bounds="exact", marabou="sound", vnnlib="sound")),   # l_2 ball -> box
    ("CR(p = 1)", dict(bounds="exact", marabou="exact", vnnlib="sound")),
    ("SR()", dict(bounds="exact", marabou="exact", vnnlib="exact")),
    ("SR(q = 1)", dict(bounds="no", marabou="exact", vnnlib="no")),        # sum of |.|: abs
    ("SR(q = 2)", dict(bounds="no", marabou="no", vnnlib="no")),
    ("LR()", dict(bounds="no", marabou="exact", vnnlib="no")),             # norm(x - x0)
    ("SCR()", dict(bounds="sound", marabou="sound", vnnlib="sound")),      # margin conditions
    ("LocalLipschitz()", dict(bounds="no", marabou="no", vnnlib="no")),
])
def test_back_ends_per_notion(instance, expected):
    got = levels(f"property P = {instance}\n")
    assert got["loss"] == got["attack"] == "exact"
    assert {k: got[k] for k in expected} == expected


def test_disjunctions_are_only_sound_for_bound_propagation():
    got = levels("property P(eps = 0.1):\n    forall x in ball(x0, eps): argmax(f(x)) != y\n")
    assert got["bounds"] == "sound" and got["marabou"] == "exact"


def test_refusals_give_a_reason():
    prop = specrob.loads("property P = LocalLipschitz()\n")["P"]
    support = backends(prop)
    assert "piecewise linear" in support["marabou"].note
    assert "not a linear constraint" in support["bounds"].note
