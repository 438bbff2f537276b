"""The transfer reproduction (seed 001, section 4) end to end at the smoke budget: every setup
trained and measured, the page with the paper's Table 4 rows and the claims, and a rerun that
reloads the networks and the accuracies."""
from __future__ import annotations

import json

import numpy as np
import pytest

from specrob.data import load_data
from specrob.reproduce.common import Options
from specrob.reproduce.tibo_transfer import experiment, run


def test_corrupted_training_inputs_come_from_other_points_than_the_clean_ones():
    data = load_data("digits")
    budget = experiment.SMOKE
    small = experiment.shifted_rows(data, budget, 1, 32)
    large = experiment.shifted_rows(data, budget, 1, 64)
    np.testing.assert_array_equal(small, large[:32])  # a smaller N_c is a prefix
    start = budget.clean + 64  # after the clean points and corruption 0's block
    source = data.x_train[start:start + 32]
    assert not np.allclose(small, source)  # corrupted ...
    from specrob.corruptions import corrupt
    np.testing.assert_array_equal(small, corrupt(source, "rotate", severity=5, seed=101))


@pytest.mark.slow
def test_smoke_run_writes_the_page_and_reuses_its_networks(tmp_path):
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    page = run(options, "specrob reproduce tibo-transfer --smoke")
    assert page == tmp_path / "out" / "tibo-transfer.md"
    text = page.read_text()
    for heading in ("## Table 4 (cut down)", "## Accuracy against N_c",
                    "## How this differs from the authors' experiments",
                    "## The paper's claims, checked"):
        assert heading in text
    assert "99.1 / 88.6 / 90.7 / 91.5" in text  # the paper's PLAIN row
    record = json.loads((tmp_path / "out" / "tibo-transfer.json").read_text())
    sizes, corruptions = experiment.SMOKE.shifted, experiment.SMOKE.corruptions
    runs = {"plain", "gauss"} | {f"joint-{n}" for n in sizes} | {
        f"separate-{k}-{n}" for k in corruptions for n in sizes}
    assert set(record["accuracy"]) == runs == set(record["training"])
    for name, acc in record["accuracy"].items():
        assert all(0.0 <= v <= 1.0 for v in acc.values())
        wanted = ({"clean", *corruptions} if not name.startswith("separate")
                  else {"clean", name.split("-", 1)[1].rsplit("-", 1)[0]})
        assert set(acc) == wanted
    assert len(record["claims"]) == 5
    assert (tmp_path / "out" / "tibo-transfer" / "accuracy-vs-nc.png").stat().st_size > 1000
    assert (tmp_path / "work" / "tibo-transfer" / "smoke" / "joint-32" / "adapted.onnx").exists()

    run(options, "specrob reproduce tibo-transfer --smoke")
    again = json.loads((tmp_path / "out" / "tibo-transfer.json").read_text())
    assert not any(k.startswith("train ") or k.startswith("accuracy-") for k in again["seconds"])
    assert again["accuracy"] == record["accuracy"]
