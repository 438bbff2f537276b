"""`specrob reproduce tibo`: the pure helpers, and the smoke run end to end (slow)."""
from __future__ import annotations

import itertools
import json
import math

import pytest

import torch

from specrob.reproduce import tibo
from specrob.reproduce.common import Options
from specrob.reproduce.tibo import experiment, page
from tests.conftest import explicit_devices


def test_closest_to_picks_the_accuracy_nearest_the_baseline():
    assert experiment.closest_to(0.90, {"a": 0.85, "b": 0.905, "c": 0.95}) == "b"
    assert experiment.closest_to(0.90, {"a": 0.89, "b": 0.91}) == "a"  # a tie: the first listed


def test_choose_d_rounds_the_largest_finite_margin_up():
    margins = [torch.tensor([0.3, 1.1, math.inf]), torch.tensor([0.2, 0.9])]
    assert experiment.choose_d(margins) == 1.25
    assert experiment.choose_d(margins, step=0.5) == 1.5
    assert experiment.choose_d([torch.tensor([math.inf])]) == 0.25  # nothing found: one step


def test_paired_difference_caps_at_d_and_has_an_interval():
    a = torch.tensor([1.0, 2.0, 5.0, 0.5])
    b = torch.tensor([0.5, 1.0, 1.0, 0.5])
    out = experiment.paired_difference(a, b, d=2.0)
    # min(a, 2) - min(b, 2) = [0.5, 1, 1, 0]: mean 0.625
    assert out["value"] == pytest.approx(0.625)
    assert out["low"] <= out["value"] <= out["high"]


def test_build_net_is_repeatable_and_takes_flat_inputs():
    for n in (64, 784):
        a, b = experiment.build_net(n, 10, hidden=16, seed=3), experiment.build_net(n, 10, hidden=16, seed=3)
        x = torch.rand(5, n)
        assert a(x).shape == (5, 10)
        assert torch.equal(a(x), b(x))


def test_margin_stage_is_plain_json():
    net = experiment.build_net(64, 10, hidden=16)
    out = experiment.margin_stage(net.eval(), torch.rand(6, 64), seed=0)
    json.dumps(out)
    assert out["count"] == 6 and len(out["margin"]) == 6 and len(out["winner"]) == 6
    shares = sum(s["value"] for s in out["shares"].values())
    assert out["found"] == 0 or shares == pytest.approx(1.0)
    assert experiment.as_tensor([None, 0.5]).tolist() == [math.inf, 0.5]


@pytest.mark.slow
def test_smoke_run_writes_the_page_and_reuses_its_networks(tmp_path):
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    with explicit_devices():  # every tensor on the run's device: the --device oracle
        page = tibo.run(options, "specrob reproduce tibo --smoke")
    assert page == tmp_path / "out" / "tibo.md"
    text = page.read_text()
    for heading in ("## Table 1: clean test accuracy", "## Figure 3: margin curves",
                    "## Table 3: share of closest adversarial examples",
                    "## The paper's claims, checked", "## Setup and deviations", "## Seeds",
                    "## How this differs from the authors' experiments"):
        assert heading in text
    for number in ("93.47", "92.80", "93.57", "93.72", "93.30", "93.29",  # Table 1
                   "93.17", "6.18", "0.65", "82.43", "6.28", "11.29",     # Table 3, seed 001
                   "94.09", "89.22", "7.87"):                             # Table 3, seed 000
        assert number in text
    png = tmp_path / "out" / "tibo" / "fig3-margin-curves.png"
    assert png.exists() and png.stat().st_size > 1000

    record = json.loads((tmp_path / "out" / "tibo.json").read_text())
    for key in ("accuracy", "chosen", "chosen_hein", "d", "curves", "shares",
                "area_difference_vs_noreg", "ours_vs_hein", "training", "claims", "paper"):
        assert key in record
    ours = [experiment.lam_name(lam) for lam in experiment.SMOKE.lams]
    hein = [experiment.hein_name(lam) for lam in experiment.SMOKE.hein_lams]
    nets = ["NO REG"] + ours + hein
    assert set(record["accuracy"]) == set(nets)
    assert record["chosen"] in ours and record["chosen_hein"] in hein
    for name in nets:
        assert 0.0 <= record["accuracy"][name]["value"] <= 1.0
        curve = [c["value"] for c in record["curves"][name]["curve"]]
        assert all(u >= v for u, v in itertools.pairwise(curve))  # R(eps) never increases
        assert 0.0 <= curve[-1] <= curve[0] <= 1.0
        area = record["curves"][name]["area"]["value"]
        assert 0.0 <= area <= record["d"]
        shares = record["shares"][name]
        assert set(shares) == {"fgsm", "pgd", "deepfool"}
        if shares["pgd"]["count"]:  # shares among the points some attack moved across
            assert sum(s["value"] for s in shares.values()) == pytest.approx(1.0)
        else:  # no attack succeeded on this (smoke-trained) net: no shares, not made-up ones
            assert all(math.isnan(s["value"]) for s in shares.values())
    assert any(record["shares"][name]["pgd"]["count"] for name in record["accuracy"])
    assert len(record["claims"]) == 6
    assert any("HEIN" in c["claim"] and "Table 1" in c["claim"] for c in record["claims"])
    first = ({"noreg"} | {f"cotrain-lam{lam:g}" for lam in experiment.SMOKE.lams}
             | {f"hein-lam{lam:g}" for lam in experiment.SMOKE.hein_lams})
    assert set(record["training"]) == first | {f"{n}-seed1" for n in first}  # two seeds
    seeds = record["seeds"]
    assert set(seeds) == {"0", "1"} and seeds["0"]["chosen"] == record["chosen"]
    assert seeds["0"]["accuracy"] == {k: e["value"] for k, e in record["accuracy"].items()}
    assert seeds["1"]["chosen"] in ours and seeds["1"]["chosen_hein"] in hein
    assert seeds["0"]["ours_minus_hein"] == pytest.approx(record["ours_vs_hein"]["value"])
    assert "mean ± standard error over 2 seeds" in record["claims"][0]["ours"]

    again = tibo.run(options, "specrob reproduce tibo --smoke")
    second = json.loads((tmp_path / "out" / "tibo.json").read_text())
    assert not any(k.startswith("train ") for k in second["seconds"])  # networks reloaded
    assert second["accuracy"] == record["accuracy"]
    assert second["curves"] == record["curves"]
    assert json.dumps(second["shares"]) == json.dumps(record["shares"])  # NaN-safe
    assert again.read_text().count("## Table") == 2


def test_epoch_spread_and_stability_read_the_last_epochs():
    metrics = [{"test_accuracy": a} for a in (0.5, 0.8, 0.9, 0.85, 0.88)]
    assert page.epoch_spread(metrics, last=3) == (0.85, 0.9)
    assert "80.0% and 90.0%" in page.stability({"noreg": metrics})
    assert page.stability({"noreg": metrics[:1]}) == ""
