"""The certified-training page (issue 17) end to end at the smoke budget: every network of
both kinds trained and verified at every radius, the page with its tables, figure and
anchors, and a rerun that reloads everything."""
from __future__ import annotations

import json

import pytest

from specrob.reproduce.certified import experiment, run
from specrob.reproduce.common import Options


@pytest.mark.slow
def test_smoke_run_writes_the_page_and_reuses_its_networks(tmp_path):
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    page = run(options, "specrob reproduce certified --smoke")
    assert page == tmp_path / "out" / "certified.md"
    text = page.read_text()
    for heading in ("## Setup", "## 784-100-10 clamp net (seed 003)",
                    "## small CNN (conv16-conv32-100-10)", "## Verifiability against accuracy",
                    "## The paper's claims, checked"):
        assert heading in text
    record = json.loads((tmp_path / "out" / "certified.json").read_text())
    rows = len(experiment.REGIMES)
    verdicts = record["constraint_satisfaction"]
    assert len(verdicts) == len(experiment.NETS) * len(experiment.EPS) * (rows + 1)
    for key, row in verdicts.items():
        assert row["points"] == experiment.SMOKE.verify_points, key
        assert row["verified"] + row["falsified"] + row["unknown"] == row["points"]
        assert row["command"].startswith("specrob verify ")
    assert len(record["claims"]) == 7
    assert (tmp_path / "out" / "certified" / "cs-vs-accuracy.png").stat().st_size > 1000

    run(options, "specrob reproduce certified --smoke")
    again = json.loads((tmp_path / "out" / "certified.json").read_text())
    assert not any(k.startswith(("train ", "verify-", "clean-")) for k in again["seconds"])
    assert again["constraint_satisfaction"] == verdicts
