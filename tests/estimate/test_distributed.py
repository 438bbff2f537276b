"""Evaluation on a Dask LocalCluster: the properties' blocks of centres as tasks give the
estimates of one process (the oracle), block by block and joined."""
from __future__ import annotations

import json

import pytest
import torch

import specrob
import specrob.estimate.security as security
from specrob.estimate.config import EvalConfig
from specrob.errors import OptionError
from tests.conftest import REPO, export_mlp

SPEC = REPO / "specs" / "cr.rspec"


def test_blocks_on_a_local_cluster_give_the_estimates_of_one_process(tmp_path, monkeypatch):
    """--workers 2 with more than one block: a LocalCluster of two (as --cluster local:2)."""
    import specrob.cluster
    monkeypatch.setattr(security, "BLOCK", 100)  # 250 centres: three blocks (split here)
    opened = []
    real = specrob.cluster.open_client
    monkeypatch.setattr(specrob.cluster, "open_client",
                        lambda address, **kw: opened.append(address) or real(address, **kw))
    model = export_mlp(tmp_path / "m.onnx")
    config = dict(points=250, samples=20, steps=5, eps=[0.0, 0.05, 0.1])
    one = specrob.evaluate(model, SPEC, out=tmp_path / "one", config=EvalConfig(**config))
    assert opened == []
    two = specrob.evaluate(model, SPEC, out=tmp_path / "two",
                           config=EvalConfig(**config, workers=2))
    assert opened == ["local:2"]
    assert one.results["properties"] == two.results["properties"]
    points = one.results["properties"]["CR"]["points"]
    assert points[-1]["security"]["count"] == 250
    assert 0 < points[-1]["violations"] < 250  # the check can tell blocks apart
    # where the blocks ran is not part of the run: the cluster's folder resumes without it
    again = specrob.evaluate(model, SPEC, out=tmp_path / "two", config=EvalConfig(**config))
    assert again.results["properties"] == one.results["properties"]
    saved = json.loads((tmp_path / "two" / "results.json").read_text())
    assert "cluster" not in saved["config"] and "workers" not in saved["config"]
    # one block: --workers starts no cluster
    specrob.evaluate(model, SPEC, out=tmp_path / "small",
                     config=EvalConfig(**{**config, "points": 90}, workers=2))
    assert opened == ["local:2"]


def test_joined_blocks_are_the_blocks_side_by_side():
    from specrob.search.attacks import block_seed
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x = torch.rand(30, 4)
    with torch.no_grad():
        y = net(x).argmax(-1)
    prop = specrob.loads("property P = CR(eps = 0.2)\n")["P"]
    parts = [security.curve_block(prop, net, x[s], y[s], [0.1, 0.3], samples=8,
                                  seed=block_seed(5, k))
             for k, s in enumerate((slice(0, 10), slice(10, 30)))]
    joined = security.combine(parts)
    for row, a, b in zip(joined, *parts):
        assert torch.equal(row.violated, torch.cat([a.violated, b.violated]))
        assert row.found_by == a.found_by + b.found_by
        assert row.security.count == 30
        assert row.accuracy is not None and a.accuracy is not None and b.accuracy is not None
        assert row.accuracy.value == pytest.approx(
            (10 * a.accuracy.value + 20 * b.accuracy.value) / 30, abs=1e-12)


def test_the_cluster_option_is_checked():
    with pytest.raises(OptionError, match="cluster"):
        EvalConfig(cluster="local:zero")


def test_eval_shards_merged_are_the_run_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(security, "BLOCK", 100)  # 250 centres: blocks 0, 1, 2
    model = export_mlp(tmp_path / "m.onnx")
    spec = specrob.loads("property CR = CR(eps = 0.1)\n"
                         "score s(eps = 0.05):\n"
                         "    Q = uniform(ball(x0, eps, inf)); H = id; G = density\n")
    config = dict(points=250, samples=20, steps=5, eps=[0.0, 0.05, 0.1])
    one = specrob.evaluate(model, spec, out=tmp_path / "one", config=EvalConfig(**config))
    for i in range(2):
        specrob.evaluate(model, spec, out=tmp_path / f"s{i}",
                         config=EvalConfig(**config, shard=f"{i}/2"))
    shard1 = json.loads((tmp_path / "s1" / "results.json").read_text())
    assert shard1["properties"]["CR"]["blocks"] == [1] and shard1["scores"] == {}
    merged = specrob.merge(tmp_path / "all", [tmp_path / "s1", tmp_path / "s0"])
    assert merged.kind == "eval"
    assert merged.summary["properties"] == one.results["properties"]
    assert merged.summary["scores"] == one.results["scores"]
    assert merged.summary["key"] == one.results["key"]
    # the merged folder is the whole run's: the same command there has nothing left to do
    again = specrob.evaluate(model, spec, out=tmp_path / "all", config=EvalConfig(**config))
    assert again.results["properties"] == one.results["properties"]


def test_eval_merge_refuses_a_missing_or_unfinished_shard(tmp_path, monkeypatch):
    from specrob.estimate.merge import EvalMergeError
    monkeypatch.setattr(security, "BLOCK", 100)
    model = export_mlp(tmp_path / "m.onnx")
    config = dict(points=150, samples=5, steps=2, eps=[0.05])
    for i in range(2):
        specrob.evaluate(model, SPEC, out=tmp_path / f"s{i}",
                         config=EvalConfig(**config, shard=f"{i}/2"))
    with pytest.raises(EvalMergeError, match="shard 1/2 missing"):
        specrob.merge(tmp_path / "m", [tmp_path / "s0"])
    (tmp_path / "s1" / "blocks" / "CR-1.pt").unlink()
    with pytest.raises(EvalMergeError, match=r"block 1 of property CR is missing; .*--shard 1/2 --fresh"):
        specrob.merge(tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"])
    (tmp_path / "s0" / "blocks" / "CR-0.pt").write_text("garbage")
    with pytest.raises(specrob.SpecrobError, match="unreadable block"):
        specrob.merge(tmp_path / "m", [tmp_path / "s0", tmp_path / "s1"])
