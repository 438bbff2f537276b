"""sympy normal forms: varying terms on the left, constants on the right; linear forms over
the coordinates of f(x) and x where the atom is affine in them."""
from __future__ import annotations

import pytest

import specrob
from specrob.lang.normal import linear_forms, normal_formula


def prop(formula: str, params: str = "eps = 0.1, c = 2"):
    return specrob.loads(f"property P({params}):\n    forall x in ball(x0, eps): {formula}\n")["P"]


@pytest.mark.parametrize("formula,normal", [
    ("f(x)[y] > f(x)[0]", "f(x)[y] - f(x)[0] > 0"),
    ("2 * (f(x)[0] - f(x0)[0]) <= c", "2*f(x)[0] <= c + 2*f(x0)[0]"),
    ("(f(x) - f(x0))[1] + f(x0)[1] >= 0", "f(x)[1] >= 0"),          # f(x0)[1] cancels
    ("c * f(x)[0] - f(x)[0] * c < 1", "0 < 1"),                       # everything cancels
    ("norm(f(x) - f(x0), 1) <= c", "norm(f(x) - f(x0), 1) <= c"),
    ("abs(f(x0)[0]) + f(x)[0] <= 1", "f(x)[0] <= 1 - abs(f(x0)[0])"),
])
def test_atom_normal_forms(formula, normal):
    p = prop(formula)
    assert normal_formula(p.body, p.var) == normal


@pytest.mark.parametrize("formula,forms", [
    ("argmax(f(x)) == y", ["f(x)[y] - f(x)[j] > 0"]),
    ("3 * f(x)[0] - c * f(x)[1] + c * x[2] <= f(x0)[0]", ["3*f(x)[0] + c*x[2] - c*f(x)[1] <= f(x0)[0]"]),
    ("norm(f(x) - f(x0), inf) < c", ["f(x)[i] < c + f(x0)[i]", "-f(x)[i] < c - f(x0)[i]"]),
    ("norm(f(x) - f(x0), 1) <= c", []),
    ("softmax(f(x))[y] >= 0.5", []),
    ("f(x)[0] * f(x)[1] <= 1", []),
])
def test_linear_forms(formula, forms):
    p = prop(formula)
    assert [str(f) for a in linear_forms(p) for f in a.linear] == forms


def test_atoms_without_linear_form_say_why():
    (atom,) = linear_forms(prop("norm(f(x) - f(x0), 1) <= c"))
    assert atom.linear == () and "not linear" in atom.why_not_linear


def test_linear_form_coefficients_are_exposed_for_encoders():
    (atom,) = linear_forms(prop("3 * f(x)[0] - c * f(x)[1] <= 1"))
    (form,) = atom.linear
    assert dict(form.terms) == {"f(x)[0]": "3", "f(x)[1]": "-c"} and form.rhs == "1"
