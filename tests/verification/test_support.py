"""Which back ends handle a property exactly, soundly or not at all (DESIGN §4): each back
end's own `supports`, gathered by `specrob.api.backends`; a refusal matches what the encoder
refuses at a real centre."""
from __future__ import annotations

import pytest

import specrob
from specrob.api import backends
from tests.conftest import REPO, export_mlp


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


def _library_properties():
    out = []
    for path in sorted((REPO / "specs").glob("*.rspec")):
        spec = specrob.load(path)
        out += [(path, p.name) for p in spec.properties]
    return out


@pytest.mark.parametrize("path,name", _library_properties(),
                         ids=[f"{p.stem}-{n}" for p, n in _library_properties()])
def test_vnnlib_support_is_what_export_does(tmp_path, path, name):
    """The oracle: `specrob.export` on a real ONNX model (digits, 64 inputs, 10 classes)
    refuses the property exactly when its vnnlib support is "no"."""
    model = export_mlp(tmp_path / "m.onnx")
    prop = specrob.load(path)[name]
    refused = backends(prop)["vnnlib"].level == "no"
    try:
        specrob.export(model, path, property=name, points=2, out=tmp_path / "out")
        exported = True
    except specrob.SpecrobError:
        exported = False
    assert exported != refused
