"""`specrob reproduce casadio`: seed 003's regimes, security curves, Table 2 and verification."""
from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

import specrob
from specrob.cli import app
from specrob.reproduce import casadio
from specrob.reproduce.casadio import claims, experiment, page
from specrob.reproduce.common import Options
from tests.conftest import explicit_devices


def test_the_spec_carries_the_papers_parameters():
    spec = specrob.loads(experiment.SPEC)
    assert spec["SR_paper"].value("eps") == 0.1 and spec["SR_paper"].value("delta") == 10
    assert spec["SCR_text"].value("eta") == 0.52 and spec["LR_paper"].value("L") == 10
    # the headline SCR is the authors' implementation's: the true logit >= log 0.3
    assert spec["SCR_paper"].value("tau") == pytest.approx(math.log(0.3))
    assert all(spec[name].ball.p == float("inf") for name in experiment.NOTIONS.values())


def test_the_network_is_the_papers_784_100_10_with_clamped_outputs():
    net = experiment.build_net(784, 10)
    assert [tuple(p.shape) for p in net.parameters()] == [(100, 784), (100,), (10, 100), (10,)]
    with torch.no_grad():
        net[2].bias.fill_(1e4)
        assert net(torch.rand(3, 784)).max() == 100.0


def test_every_regime_of_table_2_has_the_papers_number():
    assert set(claims.PAPER_TABLE2) == set(experiment.PAPER_ROWS)
    # the text's readings beside the authors': every -text row has its paper row
    texts = {name for name, *_ in experiment.REGIMES} - set(experiment.PAPER_ROWS)
    assert texts and all(t.endswith("-text") for t in texts)
    assert {t.removesuffix("-text") for t in texts} <= set(experiment.PAPER_ROWS)


def test_the_headline_rows_train_as_the_authors_code_does():
    regimes = {name: options for name, _, _, options in experiment.REGIMES}
    assert regimes["aug-ru"]["augment"] == "random-walk"
    assert regimes["aug-fgsm"] == {"regime": "augmentation", "augment": "static-fgsm",
                                   "reference": "baseline"}
    assert regimes["adversarial"]["adv_steps"] > 1  # PGD (Table 2's 85.1); FGSM beside
    assert regimes["adversarial-text"]["adv_steps"] == 1
    notion = {name: n for name, _, n, _ in experiment.REGIMES}
    assert notion["constraint-scr"] == "SCR" and notion["constraint-scr-text"] == "SCR_text"


def test_the_paper_budget_is_the_papers():
    assert (experiment.PAPER.epochs, experiment.PAPER.lr) == (100, 1e-4)


@pytest.mark.slow
def test_smoke_run_writes_the_page_figures_and_numbers_and_resumes(tmp_path):
    with explicit_devices():  # every tensor on the run's device: the --device oracle
        result = CliRunner().invoke(app, ["reproduce", "casadio", "--smoke", "--quiet", "--out",
                                          str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out" / "casadio.md").read_text()
    assert "specrob reproduce casadio --smoke" in text
    for heading in ("## Table 2", "## Constraint security", "## Constraint accuracy",
                    "## Constraint satisfaction", "## The paper's claims, checked"):
        assert heading in text
    assert "88.2" in text and "85.1" in text  # the paper's Table 2 beside ours
    assert "## How this differs from the authors' experiments" in text
    for item in ("SCR", "Data augmentation (RU)", "Data augmentation (FGSM)",
                 "Adversarial training", "Budget"):
        assert f"| {item} |" in text
    figures = sorted((tmp_path / "out" / "casadio").glob("*.png"))
    assert len(figures) == len(page.FIGURES)
    assert all(f.stat().st_size > 1000 and f"casadio/{f.name}" in text for f in figures)

    record = json.loads((tmp_path / "out" / "casadio.json").read_text())
    assert set(record["clean_accuracy"]) == set(experiment.LABEL)
    assert all(0.0 <= a <= 1.0 for a in record["clean_accuracy"].values())
    for curves in record["security"].values():
        for notion, rows in curves.items():
            values = [r["security"]["value"] for r in rows]
            assert [r["eps"] for r in rows] == list(experiment.EPS)
            assert values == sorted(values, reverse=True)  # balls grow: never more secure
            if notion in ("SR", "LR"):  # x = x0 satisfies both: nothing to find at eps 0
                assert values[0] == 1.0
    for verdicts in record["constraint_satisfaction"].values():
        for v in verdicts.values():
            assert v["verified"] + v["falsified"] + v["unknown"] == v["points"] > 0
    assert len(record["claims"]) >= 8

    # the same command again: every stage is reused
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    casadio.run(options, "specrob reproduce casadio --smoke")
    again = json.loads((tmp_path / "out" / "casadio.json").read_text())
    assert not any(k.startswith("train ") for k in again["seconds"])  # nothing retrained
    assert again["clean_accuracy"] == record["clean_accuracy"]
    assert again["security"] == record["security"]
