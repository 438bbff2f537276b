"""The on-manifold reproduction (seed 000, section 7) end to end at the smoke budget: the
generator and the four nets trained, the page with the paper's Tables 4 and 5 beside ours
and the claims, and a rerun that reloads everything."""
from __future__ import annotations

import json

import pytest

from specrob.reproduce.common import Options
from specrob.reproduce.tibo_manifold import experiment, run


@pytest.mark.slow
def test_smoke_run_writes_the_page_and_reuses_its_networks(tmp_path):
    options = Options(smoke=True, out=tmp_path / "out", work=tmp_path / "work", progress=False)
    page = run(options, "specrob reproduce tibo-manifold --smoke")
    assert page == tmp_path / "out" / "tibo-manifold.md"
    text = page.read_text()
    for heading in ("## Table 4: accuracy and R4", "## Table 5: each training objective",
                    "## The generator's samples", "## The on-manifold robustness curves",
                    "## How this differs from the authors' experiments",
                    "## The paper's claims, checked"):
        assert heading in text
    assert "| 94.04 | 0.286 |" in text and "| 93.29 | 1.060 | 0.285 |" in text
    record = json.loads((tmp_path / "out" / "tibo-manifold.json").read_text())
    assert set(record["accuracy"]) == set(record["R4"]) == set(record["R2"]) == set(
        experiment.NETS)
    for name in experiment.NETS:
        r4 = record["R4"][name]
        assert r4["name"] == "on_manifold_average" and len(r4["curve"]) == experiment.SMOKE.radii_eval
        assert 0 <= r4["value"]["value"] and r4["value"]["count"] > 0
        assert record["R2"][name]["count"] == experiment.SMOKE.score_points
    assert len(record["claims"]) == 5
    for figure in ("samples.png", "r4-curves.png"):
        assert (tmp_path / "out" / "tibo-manifold" / figure).stat().st_size > 1000
    assert (tmp_path / "work" / "tibo-manifold" / "smoke" / "autoencoder" /
            "autoencoder.py").exists()

    run(options, "specrob reproduce tibo-manifold --smoke")
    again = json.loads((tmp_path / "out" / "tibo-manifold.json").read_text())
    assert not any(k.startswith(("train ", "r4-", "margins-")) for k in again["seconds"])
    assert again["R4"] == record["R4"] and again["accuracy"] == record["accuracy"]
