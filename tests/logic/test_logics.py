"""Loss values of every logic and atom kind, computed by hand; zero exactly where the body
holds; finite gradients at exactly satisfied terms."""
from __future__ import annotations

import math

import pytest
import torch

import specrob
from specrob.lang.params import resolve_params
from specrob.lang.walk import negate
from specrob.logic.formulas import evaluate, holds
from specrob.logic.logics import LOGICS, make_logic
from specrob.logic.terms import Points

ALL_LOGICS = ["dl2", "goedel", "lukasiewicz", "product", "yager"]


def body(formula: str, params: str = "eps = 0.1"):
    return specrob.loads(f"property P({params}):\n    forall x in ball(x0, eps): {formula}\n")["P"].body


def points(fx, fx0=None, y=0, x=None, x0=None, **params) -> Points:
    fx = torch.tensor([fx], dtype=torch.float64)
    fx0 = fx.clone() if fx0 is None else torch.tensor([fx0], dtype=torch.float64)
    x = torch.zeros(1, 2, dtype=torch.float64) if x is None else torch.tensor([x], dtype=torch.float64)
    x0 = x.clone() if x0 is None else torch.tensor([x0], dtype=torch.float64)
    return Points(x, fx, x0, fx0, torch.tensor([y]), {k: float(v) for k, v in params.items()})


def loss(logic: str, formula: str, pts: Points, params="eps = 0.1") -> float:
    lg = make_logic(logic, xi=0.1)
    prop = specrob.loads(f"property P({params}):\n    forall x in ball(x0, eps): {formula}\n")["P"]
    pts.params.update(resolve_params(prop, pts.x.shape[-1]))
    return lg.loss(evaluate(prop.body, pts, lg)).item()


# DL2 atoms (Fischer et al.): <= -> max(a - b, 0); < adds xi at a tie; == -> |a - b|; != -> xi at a tie
DL2_ATOMS = [
    ("f(x)[0] <= f(x)[1]", [2.0, 1.0], 1.0), ("f(x)[0] <= f(x)[1]", [1.0, 2.0], 0.0),
    ("f(x)[0] < f(x)[1]", [1.0, 1.0], 0.1), ("f(x)[0] < f(x)[1]", [3.0, 1.0], 2.0),
    ("f(x)[0] < f(x)[1]", [0.5, 1.0], 0.0),
    ("f(x)[0] >= f(x)[1]", [1.0, 3.5], 2.5), ("f(x)[0] > f(x)[1]", [2.0, 2.0], 0.1),
    ("f(x)[0] == f(x)[1]", [3.0, 1.0], 2.0), ("f(x)[0] == f(x)[1]", [1.0, 1.0], 0.0),
    ("f(x)[0] != f(x)[1]", [1.0, 1.0], 0.1), ("f(x)[0] != f(x)[1]", [1.0, 2.0], 0.0),
]


@pytest.mark.parametrize("formula,fx,expected", DL2_ATOMS)
def test_dl2_atoms(formula, fx, expected):
    assert loss("dl2", formula, points(fx)) == pytest.approx(expected)


@pytest.mark.parametrize("formula,fx,dl2_loss", DL2_ATOMS)
@pytest.mark.parametrize("logic", ["goedel", "lukasiewicz", "product", "yager"])
def test_fuzzy_atoms_are_one_over_one_plus_the_dl2_violation(logic, formula, fx, dl2_loss):
    assert loss(logic, formula, points(fx)) == pytest.approx(1 - 1 / (1 + dl2_loss))


# CR at fx = [1, 3, 2], y = 0: violations 2 (class 1) and 1 (class 2);
# fuzzy truths 1/3 and 1/2.
CR_VIOLATED = {
    "dl2": 3.0,                                  # sum
    "goedel": 1 - 1 / 3,                         # 1 - min
    "lukasiewicz": 1.0,                          # 1 - max(0, 1/3 + 1/2 - 1)
    "product": 1 - 1 / 6,                        # 1 - product
    "yager": 1 - (1 - math.sqrt((2 / 3) ** 2 + (1 / 2) ** 2)),  # p = 2: 1 - (1 - 5/6)
}
# Its negation at fx = [3, 1, 2]: exists j != y: f[j] >= f[y]; violations 2 and 1.
EXISTS_VIOLATED = {
    "dl2": 2.0,                                  # product
    "goedel": 1 - 1 / 2,                         # 1 - max
    "lukasiewicz": 1 - 5 / 6,                    # 1 - min(1, 1/3 + 1/2)
    "product": 1 - (1 - (2 / 3) * (1 / 2)),      # 1 - (1 - prod(1 - t))
    "yager": 1 - math.sqrt((1 / 3) ** 2 + (1 / 2) ** 2),
}


@pytest.mark.parametrize("logic", ALL_LOGICS)
def test_cr_margin_conjunction_by_hand(logic):
    assert loss(logic, "argmax(f(x)) == y", points([1.0, 3.0, 2.0])) == pytest.approx(
        CR_VIOLATED[logic])
    assert loss(logic, "argmax(f(x)) == y", points([3.0, 1.0, 2.0])) == 0.0


@pytest.mark.parametrize("logic", ALL_LOGICS)
def test_existential_by_hand(logic):
    assert loss(logic, "argmax(f(x)) != y", points([3.0, 1.0, 2.0])) == pytest.approx(
        EXISTS_VIOLATED[logic])
    assert loss(logic, "argmax(f(x)) != y", points([1.0, 3.0, 2.0])) == 0.0


def test_dl2_disjunction_is_a_product_and_conjunction_a_sum():
    pts = points([2.0, 0.0, 5.0])
    # f0 <= f1 (violation 2), f2 <= f1 (violation 5)
    assert loss("dl2", "f(x)[0] <= f(x)[1] or f(x)[2] <= f(x)[1]", pts) == pytest.approx(10.0)
    assert loss("dl2", "f(x)[0] <= f(x)[1] and f(x)[2] <= f(x)[1]", pts) == pytest.approx(7.0)


def test_norms_and_parameters_by_hand():
    pts = points([1.0, -2.0], fx0=[0.0, 0.0], x=[0.3, 0.0], x0=[0.0, 0.4])
    params = "eps = 0.1, delta = 1.5, L = 2"
    # SR, l_inf: max(|1|, |-2|) = 2 > 1.5 by 0.5
    assert loss("dl2", "norm(f(x) - f(x0), inf) <= delta", pts, params) == pytest.approx(0.5)
    # l_1: 3 - 1.5
    assert loss("dl2", "norm(f(x) - f(x0), 1) <= delta", pts, params) == pytest.approx(1.5)
    # LR, l_2 on both sides: sqrt(5) <= 2 * 0.5 -> violation sqrt(5) - 1
    assert loss("dl2", "norm(f(x) - f(x0), 2) <= L * norm(x - x0, 2)", pts, params) == \
        pytest.approx(math.sqrt(5) - 1)


def test_softmax_and_reductions_by_hand():
    pts = points([0.0, math.log(3.0)])  # softmax = [1/4, 3/4]
    assert loss("dl2", "softmax(f(x))[y] >= 0.52", pts) == pytest.approx(0.52 - 0.25)
    assert loss("dl2", "f(x)[y] - max(f(x)[j] for j != y) > 0", pts) == pytest.approx(math.log(3))
    assert loss("dl2", "max(f(x)) <= 1", pts) == pytest.approx(math.log(3) - 1)


def test_index_conditions_are_crisp():
    pts = points([0.0, 5.0], y=1)
    assert loss("dl2", "y != 1 or f(x)[0] > f(x)[1]", pts) == pytest.approx(5.0)
    assert loss("dl2", "y != 0 or f(x)[0] > f(x)[1]", pts) == 0.0


SATISFIED = [  # (formula, fx, fx0): each holds, several exactly at equality
    ("argmax(f(x)) == y", [2.0, 1.0, 0.0], None),
    ("norm(f(x) - f(x0), 2) <= 0", [1.0, 2.0], [1.0, 2.0]),
    ("norm(f(x) - f(x0), 1) <= 0", [1.0, 2.0], [1.0, 2.0]),
    ("norm(f(x) - f(x0), inf) <= 0", [1.0, 2.0], [1.0, 2.0]),
    ("f(x)[0] == f(x)[1]", [1.5, 1.5], None),
    ("abs(f(x)[0] - f(x)[1]) <= 0", [1.5, 1.5], None),
    ("softmax(f(x))[y] >= 0.5", [0.0, 0.0], None),
    ("f(x)[0] <= f(x)[1] or f(x)[0] >= f(x)[1]", [1.0, 1.0], None),
    ("forall j: exists k: f(x)[k] >= f(x)[j]", [1.0, 1.0, 1.0], None),
    ("norm(softmax(f(x)) - softmax(f(x0)), 2) <= 0 * norm(x - x0, 2)", [0.5, 1.0], [0.5, 1.0]),
]


@pytest.mark.parametrize("formula,fx,fx0", SATISFIED)
@pytest.mark.parametrize("logic", ALL_LOGICS)
def test_loss_is_exactly_zero_with_finite_gradients_where_the_body_holds(logic, formula, fx, fx0):
    pts = points(fx, fx0)
    pts.fx.requires_grad_(True)
    lg = make_logic(logic)
    f = body(formula)
    assert holds(f, pts).item()
    value = lg.loss(evaluate(f, pts, lg))
    assert value.item() == 0.0
    (grad,) = torch.autograd.grad(value.sum(), pts.fx)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("logic", ALL_LOGICS)
def test_gradients_stay_finite_at_x_equal_x0(logic):
    pts = points([1.0, 2.0], fx0=[1.0, 2.0], x=[0.5, 0.5], x0=[0.5, 0.5])
    pts.x.requires_grad_(True)
    lg = make_logic(logic)
    f = body("norm(f(x) - f(x0), 2) <= 2 * norm(x - x0, 2)")
    (grad,) = torch.autograd.grad(lg.loss(evaluate(f, pts, lg)).sum(), pts.x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("logic", ALL_LOGICS)
def test_loss_is_never_negative(logic):
    torch.manual_seed(0)
    lg = make_logic(logic)
    f = body("(argmax(f(x)) == y and norm(f(x) - f(x0), inf) <= 1) or exists j: f(x)[j] > 3")
    pts = Points(torch.rand(64, 2), torch.randn(64, 4) * 3, torch.rand(64, 2),
                 torch.randn(64, 4), torch.randint(0, 4, (64,)), {})
    assert (lg.loss(evaluate(f, pts, lg)) >= 0).all()


def test_negation_flips_satisfaction():
    torch.manual_seed(1)
    f = body("argmax(f(x)) == y or norm(f(x) - f(x0), 1) < 1")
    pts = Points(torch.rand(200, 2), torch.randn(200, 3), torch.rand(200, 2),
                 torch.randn(200, 3), torch.randint(0, 3, (200,)), {})
    assert (holds(f, pts) == ~holds(negate(f), pts)).all()


def test_every_logic_is_registered_and_yager_takes_p():
    assert set(LOGICS) == set(ALL_LOGICS)
    assert make_logic("yager:3").p == 3.0
    with pytest.raises(ValueError, match="unknown logic"):
        make_logic("fuzzy")
