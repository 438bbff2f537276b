"""The standard library in specs/: every file checks, with golden normal forms, and each named
notion can be instantiated from any spec without an import."""
from __future__ import annotations

import math

import pytest
import torch

import specrob
from specrob.lang import ir
from specrob.lang.summary import describe
from tests.conftest import SPECS

EXPECTED_FILES = {"sr", "lr", "cr", "scr", "lipschitz", "margin", "gaussian", "manifold"}

GOLDEN_PROPERTIES = {
    "CR": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)",
           "forall j != y: f(x)[y] - f(x)[j] > 0",
           ["f(x)[y] - f(x)[j] > 0"]),
    "SR": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)",
           "norm(f(x) - f(x0), inf) <= delta",
           ["f(x)[i] <= delta + f(x0)[i]", "-f(x)[i] <= delta - f(x0)[i]"]),
    "SR_label": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)",
                 "norm(f(x) - onehot(y), inf) <= delta",
                 ["f(x)[i] <= delta + onehot(y)[i]", "-f(x)[i] <= delta - onehot(y)[i]"]),
    "LR": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)",
           "norm(f(x) - f(x0), inf) - L*norm(x - x0, inf) <= 0", []),
    "SCR": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)", "softmax(f(x))[y] >= eta", []),
    "SCR_logit": ("forall x in ball(x0, eps, inf) ∩ box(0, 1)", "f(x)[y] >= tau",
                  ["f(x)[y] >= tau"]),
    "LocalLipschitz": ("forall x in ball(x0, r, 2) ∩ box(0, 1)",
                       "norm(softmax(f(x)) - softmax(f(x0)), 2) - alpha*norm(x - x0, 2) <= 0", []),
}

GOLDEN_SCORES = {
    "margin_area": ("uniform(ball(x0, eps, 2))", "indicator", "density", ["eps ~ uniform(0, d)"]),
    "average_margin": ("uniform(ball(x0, eps, 2))", "indicator", "1", ["eps ~ uniform(0, d)"]),
    "gaussian_consistency": ("gaussian(x0, sigma)", "id", "density", []),
    "on_manifold_average": ("manifold(generator, sigma, ball(x0, eps, 2))", "id",
                            "density / eps", ["eps ~ uniform(0, d)"]),
    "on_manifold_worst": ("manifold(generator, sigma, ball(x0, eps, 2))", "indicator",
                          "density", ["eps ~ uniform(0, d)"]),
    "on_manifold_label": ("manifold(generator, sigma, ball(x0, eps, 2)) given label",
                          "indicator", "density", ["eps ~ uniform(0, d)"]),
}

PAPER_DEFAULTS = {  # Casadio et al. Appendix A; Fischer et al.'s eta; Tibo et al.'s sigma
    "SR": {"eps": 0.1, "delta": 10.0, "p": math.inf, "q": math.inf},
    "LR": {"eps": 0.1, "L": 10.0, "p": math.inf},
    "CR": {"eps": 0.1, "p": math.inf},
    "SCR": {"eps": 0.1, "eta": 0.52, "p": math.inf},
    "SCR_logit": {"eps": 0.1, "tau": math.log(0.3), "p": math.inf},  # the authors' code
    "on_manifold_average": {"sigma": 0.06},
}


def _all_declarations():
    out = {}
    for path in SPECS:
        spec = specrob.load(path)
        for decl in describe(spec)["declarations"]:
            out[decl["name"]] = decl
    return out


def test_the_standard_library_has_the_files_the_papers_need():
    assert {p.stem for p in SPECS} == EXPECTED_FILES


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_standard_spec_checks_and_names_its_paper(path):
    spec = specrob.load(path)
    assert spec.names
    head = path.read_text().split("\n\n")[0]
    assert "seed" in head and ("Definition" in head or "Example" in head)


@pytest.mark.parametrize("name", GOLDEN_PROPERTIES)
def test_golden_normal_form_of_property(name):
    decl = _all_declarations()[name]
    assert (decl["quantifier"], decl["normal_form"], decl["linear_forms"]) == GOLDEN_PROPERTIES[name]


@pytest.mark.parametrize("name", GOLDEN_SCORES)
def test_golden_form_of_score(name):
    decl = _all_declarations()[name]
    assert (decl["Q"], decl["H"], decl["G"], decl["families"]) == GOLDEN_SCORES[name]


@pytest.mark.parametrize("name", PAPER_DEFAULTS)
def test_parameters_default_to_the_papers_values(name):
    values = {p["name"]: p["value"] for p in _all_declarations()[name]["params"]}
    for key, expected in PAPER_DEFAULTS[name].items():
        got = math.inf if values[key] == "inf" else values[key]
        assert got == expected, key


@pytest.mark.parametrize("notion,file", [("SR", "sr"), ("LR", "lr"), ("CR", "cr"), ("SCR", "scr"),
                                         ("LocalLipschitz", "lipschitz")])
def test_named_notion_is_the_standard_definition(notion, file):
    """`property mine = CR()` in any spec is exactly the CR of specs/cr.rspec."""
    mine = specrob.loads(f"property mine = {notion}()\n")["mine"]
    standard = specrob.load(next(p for p in SPECS if p.stem == file))[notion]
    assert mine.body == standard.body and mine.ball == standard.ball
    assert mine.params == standard.params


def test_the_two_readings_of_scr_differ_where_the_text_and_the_code_differ():
    """SCR (the text: softmax_y >= 0.52) and SCR_logit (the authors' code: f(x)_y >= log 0.3)
    on logits where they disagree: a confident logit that is not a majority probability."""
    from specrob.logic.compiled import CompiledProperty
    spec = specrob.load(next(p for p in SPECS if p.stem == "scr"))
    z = torch.tensor([[0.0, 0.1, 0.0],      # logit 0.1 >= -1.2; softmax 0.36 < 0.52
                      [5.0, -2.0, -3.0],    # both hold
                      [-2.0, 0.0, 0.0]])    # logit -2 < -1.2; softmax 0.06 < 0.52
    x = torch.zeros(3, 2)
    y = torch.tensor([1, 0, 0])
    text = CompiledProperty(spec["SCR"], 2).holds_at(x, z, x, z, y).tolist()
    code = CompiledProperty(spec["SCR_logit"], 2).holds_at(x, z, x, z, y).tolist()
    assert text == [False, True, False] and code == [True, True, False]


def test_instance_overrides_defaults_and_clauses():
    prop = specrob.loads("property small = CR(eps = 0.05, p = 2):\n"
                         "    centres: train where correct, 50 points\n")["small"]
    assert prop.value("eps") == 0.05 and prop.ball.p == 2.0
    assert prop.centres == ir.Centres("train", correct_only=True, count=50)


def test_score_instance_can_change_H():
    score = specrob.loads("score s = margin_area(d = 2): H = id\n")["s"]
    assert score.H == "id" and score.value("d") == 2.0
    assert score.kernel == ir.UniformBall(ir.Ball(ir.Param("eps"), 2.0))


def test_import_makes_a_files_declarations_available(write):
    write("property Mine(eps = 0.2):\n    forall x in ball(x0, eps, 1): f(x)[y] >= 0\n", "lib.rspec")
    path = write('import "lib.rspec"\nproperty tighter = Mine(eps = 0.01)\n', "main.rspec")
    spec = specrob.load(path)
    assert spec.names == ["tighter"]
    assert spec["tighter"].value("eps") == 0.01 and spec["tighter"].ball.p == 1.0


def test_import_finds_the_standard_library(write):
    path = write('import "sr.rspec"\nproperty s = SR_label(delta = 1)\n')
    assert specrob.load(path)["s"].value("delta") == 1.0


def test_load_overrides_apply_to_every_declaration_with_that_parameter():
    spec = specrob.loads("property a = CR()\nproperty b = SR()\n", eps=0.2)
    assert spec["a"].value("eps") == spec["b"].value("eps") == 0.2


def test_an_instance_can_be_a_template():
    spec = specrob.loads("property a = CR(eps = 0.2)\nproperty b = a(p = 2)\n")
    assert spec["b"].value("eps") == 0.2 and spec["b"].ball.p == 2.0
    assert spec["b"].body == spec["a"].body


def test_an_instance_may_reuse_the_name_of_its_standard_template():
    spec = specrob.loads("property CR = CR(eps = 0.01)\n")
    assert spec["CR"].value("eps") == 0.01
