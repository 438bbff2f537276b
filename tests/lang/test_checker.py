"""The checker: desugaring into the core IR (margins, negation normal form), types, units,
scopes and the piecewise-linearity record."""
from __future__ import annotations

import math

import pytest

import specrob
from specrob.lang import ir
from specrob.lang.errors import SpecError

FX, FX0 = ir.Net(False), ir.Net(True)


def body(formula: str, params: str = "eps = 0.1", ball: str = "ball(x0, eps, inf)") -> ir.Formula:
    spec = specrob.loads(f"property P({params}):\n    forall x in {ball}: {formula}\n")
    return spec["P"].body


def margin(op: str, a, b) -> ir.Compare:
    return ir.Compare(op, ir.Index(FX, a), ir.Index(FX, b))


def test_argmax_equals_label_is_the_margin_conjunction():
    assert body("argmax(f(x)) == y") == ir.IndexQuant(
        "forall", "j", ir.Label(), margin(">", ir.Label(), ir.IndexVar("j")))


def test_argmax_differs_is_an_existential_with_the_negated_margin():
    assert body("argmax(f(x)) != y") == ir.IndexQuant(
        "exists", "j", ir.Label(), margin("<=", ir.Label(), ir.IndexVar("j")))


def test_not_is_pushed_into_the_atoms():
    assert body("not (f(x)[0] <= 1 and f(x)[1] < 2)") == ir.Or((
        ir.Compare(">", ir.Index(FX, ir.IndexConst(0)), ir.Const(1.0)),
        ir.Compare(">=", ir.Index(FX, ir.IndexConst(1)), ir.Const(2.0))))


def test_implies_becomes_a_disjunction():
    got = body("f(x)[0] > 0 implies f(x)[1] > 0")
    assert got == ir.Or((ir.Compare("<=", ir.Index(FX, ir.IndexConst(0)), ir.Const(0.0)),
                         ir.Compare(">", ir.Index(FX, ir.IndexConst(1)), ir.Const(0.0))))


def test_negated_quantifier_flips():
    got = body("not forall j != y: f(x)[j] < f(x)[y]")
    assert got == ir.IndexQuant("exists", "j", ir.Label(), margin(">=", ir.IndexVar("j"), ir.Label()))


def test_conjunctions_are_flat():
    got = body("(true and (false and true)) and true")
    assert got == ir.And((ir.Truth(True), ir.Truth(False), ir.Truth(True), ir.Truth(True)))


def test_max_of_a_vector_is_a_reduction_over_class_indices():
    got = body("max(f(x)) <= 5")
    assert got == ir.Compare("<=", ir.Reduce("max", "j", None, ir.Index(FX, ir.IndexVar("j"))),
                             ir.Const(5.0))


def test_reduction_with_an_excluded_index():
    got = body("f(x)[y] - max(f(x)[k] for k != y) > 0")
    red = ir.Reduce("max", "k", ir.Label(), ir.Index(FX, ir.IndexVar("k")))
    assert got == ir.Compare(">", ir.Arith("-", ir.Index(FX, ir.Label()), red), ir.Const(0.0))


def test_argmax_at_the_centre_is_an_index():
    got = body("argmax(f(x)) == argmax(f(x0))")
    c = ir.ArgmaxAt(FX0)
    assert got == ir.IndexQuant("forall", "j", c, margin(">", c, ir.IndexVar("j")))


def test_fresh_margin_index_avoids_names_in_use():
    got = body("forall j: argmax(f(x)) == y")
    assert got.var == "j" and got.body.var == "k"


def test_parameters_stay_symbolic_and_norms_are_resolved():
    prop = specrob.loads("property P(eps = 0.1, p: norm = 2):\n"
                         "    forall x in ball(x0, eps, p): norm(f(x), p) <= 1\n")["P"]
    assert prop.ball == ir.Ball(ir.Param("eps"), 2.0)
    assert prop.body.left == ir.Norm(FX, 2.0)
    assert prop.value("eps") == 0.1 and prop.value("p") == 2.0


def test_default_domain_is_the_unit_box_and_default_centres_the_test_set():
    prop = specrob.loads("property P = CR()\n")["P"]
    assert prop.domain == ir.Box(ir.Const(0.0), ir.Const(1.0))
    assert prop.centres == ir.Centres("test")


def test_custom_domain_and_data_file_centres():
    prop = specrob.loads('property P(eps = 0.1):\n    centres: "points.npz", 10 points\n'
                         '    domain: box(-1, 1)\n    forall x in ball(x0, eps): true\n')["P"]
    assert prop.domain == ir.Box(ir.Neg(ir.Const(1.0)), ir.Const(1.0))
    assert prop.centres == ir.Centres("points.npz", is_file=True, count=10)


@pytest.mark.parametrize("formula,ok", [
    ("norm(f(x) - f(x0), inf) <= L * norm(x - x0, inf)", True),      # output/input * input
    ("norm(f(x) - f(x0), inf) <= L", False),                          # output vs output/input
    ("norm(x - x0, 1) <= eps", True),                                 # input vs input
    ("norm(f(x), 1) <= eps", False),                                  # output vs input
    ("softmax(f(x))[y] >= 0.5", True),                                # a number adapts
    ("f(x)[y] * 2 <= L * eps", True),
])
def test_units_must_agree(formula, ok):
    params = "eps: nonneg[input] = 0.1, L: nonneg[output/input] = 10"
    if ok:
        body(formula, params)
    else:
        with pytest.raises(SpecError, match="unit mismatch"):
            body(formula, params)


@pytest.mark.parametrize("formula,message", [
    ("f(x) + 1 <= 2", "cannot add a number to a vector"),
    ("norm(f(x) * f(x0), 2) <= 1", "cannot multiply two vectors"),
    ("f(x)[f(x)] > 0", "expected a class index"),
    ("norm(f(x)[y], 2) <= 1", "expected a vector, found a number"),
    ("y > 1", "class indices are compared with == or !="),
    ("argmax(f(x)) == argmax(f(x))", "both sides"),
    ("f(x)[argmax(f(x))] > 0", "cannot be used as an index"),
    ("f(x)[1.5] > 0", "not a whole number"),
])
def test_type_errors(formula, message):
    with pytest.raises(SpecError, match=message):
        body(formula)


def test_quantified_index_cannot_shadow():
    with pytest.raises(SpecError, match="already defined"):
        body("forall eps: true")


@pytest.mark.parametrize("formula,pwl", [
    ("argmax(f(x)) == y", True),
    ("norm(f(x) - f(x0), 1) <= 1", True),
    ("norm(f(x) - f(x0), 2) <= 1", False),
    ("norm(f(x0), 2) <= f(x)[0]", True),      # an l_2 norm of a constant is a constant
    ("softmax(f(x))[y] >= 0.5", False),
    ("f(x)[0] * f(x)[1] <= 1", False),
    ("f(x)[0] / f(x)[1] <= 1", False),
    ("f(x)[0] / f(x0)[1] <= 1", True),
    ("max(f(x)) - min(f(x)) <= abs(f(x)[y])", True),
])
def test_piecewise_linearity_is_recorded(formula, pwl):
    prop = specrob.loads(f"property P(eps = 0.1):\n    forall x in ball(x0, eps): {formula}\n")["P"]
    assert prop.piecewise_linear is pwl
    assert bool(prop.nonlinear) is not pwl


def test_score_kernels_weights_and_families():
    spec = specrob.loads(
        'score s(sigma = 0.1, d = diameter):\n'
        '    Q = manifold("ae.py", sigma, ball(x0, eps, 2)) given label\n'
        '    H = id; G = density / eps\n    eps ~ uniform(0, d)\n')
    s = spec["s"]
    assert s.kernel == ir.Manifold(ir.Text("ae.py"), ir.Param("sigma"), ir.Ball(ir.Param("eps"), 2.0))
    assert s.label_conditioned and s.H == "id" and s.G == ir.Weight(True, "eps")
    assert s.families == (ir.Family("eps", ir.Const(0.0), ir.Param("d")),)
    assert s.value("d") == ir.DataConst("diameter")


def test_gaussian_kernel_and_constant_weight():
    s = specrob.loads("score g(sigma = 0.3):\n    Q = gaussian(x0, sigma); H = id; G = 1\n")["g"]
    assert s.kernel == ir.Gaussian(ir.Param("sigma")) and s.G == ir.Weight(False)


def test_path_parameters_are_strings_and_a_set_path_is_the_users():
    """A --set path is relative to the current folder (made absolute); an absolute one stays."""
    from pathlib import Path
    spec = specrob.loads("score s = on_manifold_worst()\n", generator="mine.py")
    assert spec["s"].value("generator") == str(Path("mine.py").resolve())
    spec = specrob.loads("score s = on_manifold_worst()\n", generator="/data/ae.py")
    assert spec["s"].value("generator") == "/data/ae.py"


def test_inf_parameter_values():
    prop = specrob.loads("property P = SR(delta = inf)\n")["P"]
    assert math.isinf(prop.value("delta"))


def test_argmax_compared_with_a_whole_number_is_a_class_index():
    """`argmax(f(x)) == 2` (a targeted property) becomes forall j != 2: f(x)[2] > f(x)[j],
    with 2 a class index (it used to keep the number 2.0, which no back end could index)."""
    import specrob
    from specrob.lang import ir
    body = specrob.loads("property T(eps: nonneg[input] = 0.1):\n"
                         "    forall x in ball(x0, eps, inf):\n"
                         "        argmax(f(x)) == 2\n")["T"].body
    assert body.exclude == ir.IndexConst(2)
    assert body.body.left == ir.Index(ir.Net(False), ir.IndexConst(2))
