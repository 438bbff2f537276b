"""Verification beyond one process: blocks of centres on a Dask LocalCluster, shards joined by
`specrob merge`; the oracle is the same run in one process (same rows, centre by centre)."""
from __future__ import annotations

import json

import pytest

import specrob
from specrob.cluster import ClusterError, open_client
from specrob.errors import OptionError
from specrob.verification.config import VerifyConfig
from specrob.verification.merge import MergeError
from specrob.verification.pipeline import BLOCK
from tests.conftest import REPO, export_mlp

SPEC = REPO / "specs" / "cr.rspec"


def _verdicts(folder):
    rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    return sorted((r["index"], r["verdict"], r["method"], r["centre"]) for r in rows)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """CR at eps 0.02 on every digits test centre (360: two blocks), attack and CROWN only
    (no time limit decides a verdict), in this process."""
    folder = tmp_path_factory.mktemp("verify")
    model = export_mlp(folder / "m.onnx")
    result = specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=folder / "one",
                            config=VerifyConfig(backend="bounds"))
    assert result.summary["points"] > BLOCK  # more than one block
    assert 0 < result.summary["falsified"] < result.summary["points"]
    return model, folder


def test_a_local_dask_cluster_gives_the_rows_of_one_process(one_process):
    model, folder = one_process
    result = specrob.verify(model, SPEC, set=["eps=0.02"], progress=False,
                            out=folder / "cluster",
                            config=VerifyConfig(backend="bounds", cluster="local:2"))
    assert _verdicts(folder / "cluster") == _verdicts(folder / "one")
    assert result.summary["points"] == len(_verdicts(folder / "one"))


def test_workers_start_a_local_cluster_when_there_is_more_than_one_block(one_process,
                                                                        monkeypatch):
    """--workers 2 without --cluster: the blocks on a LocalCluster of two (as local:2), the
    rows of one process; with one block the workers stay Marabou's processes."""
    import specrob.cluster
    model, folder = one_process
    opened = []
    real = specrob.cluster.open_client
    monkeypatch.setattr(specrob.cluster, "open_client",
                        lambda address, **kw: opened.append(address) or real(address, **kw))
    specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=folder / "workers",
                   config=VerifyConfig(backend="bounds", workers=2))
    assert opened == ["local:2"]
    assert _verdicts(folder / "workers") == _verdicts(folder / "one")
    specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=folder / "few",
                   config=VerifyConfig(backend="bounds", workers=2, points=BLOCK))
    assert opened == ["local:2"]


def test_shards_merged_are_the_run_in_one_process(one_process, tmp_path):
    model, folder = one_process
    for i in range(2):
        specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=tmp_path / f"s{i}",
                       config=VerifyConfig(backend="bounds", shard=f"{i}/2"))
    first = _verdicts(tmp_path / "s0")
    assert 0 < len(first) < len(_verdicts(folder / "one"))  # a shard holds part of the run
    merged = specrob.merge(tmp_path / "all", [tmp_path / "s1", tmp_path / "s0"])
    assert merged.kind == "verify"
    summary, rows = merged.summary, merged.rows
    assert _verdicts(tmp_path / "all") == _verdicts(folder / "one")
    one = json.loads((folder / "one" / "summary.json").read_text())
    for key in ("points", "verified", "falsified", "unknown", "constraint_satisfaction"):
        assert summary[key] == one[key]
    # the merged folder is the whole run's: the same command there finds every centre done
    again = specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=tmp_path / "all",
                           config=VerifyConfig(backend="bounds"))
    assert again.summary["points"] == len(rows)
    assert (tmp_path / "all" / "results.jsonl").read_text().count("\n") == len(rows)


def test_merge_refuses_shards_that_do_not_make_one_run(one_process, tmp_path):
    model, _ = one_process
    for name, eps, shard in (("a", "0.02", "0/2"), ("b", "0.03", "1/2"), ("c", "0.02", "0/3")):
        specrob.verify(model, SPEC, set=[f"eps={eps}"], progress=False, out=tmp_path / name,
                       config=VerifyConfig(backend="bounds", shard=shard, points=40))
    with pytest.raises(MergeError, match=r"shard 1/2 missing; run .*--shard 1/2"):
        specrob.merge(tmp_path / "m1", [tmp_path / "a"])
    with pytest.raises(MergeError, match="both shard 0/2"):
        specrob.merge(tmp_path / "m2", [tmp_path / "a", tmp_path / "a"])
    with pytest.raises(MergeError, match=r"another run .*differing: identity\.property"):
        specrob.merge(tmp_path / "m3", [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(MergeError, match="one of 2"):
        specrob.merge(tmp_path / "m4", [tmp_path / "a", tmp_path / "c"])
    with pytest.raises(MergeError, match="not a verify run folder"):
        specrob.merge(tmp_path / "m5", [tmp_path])


def test_merge_refuses_unfinished_shards_and_shards_of_other_centres(one_process, tmp_path):
    import shutil
    model, _ = one_process
    for name, shard, points in (("s0", "0/2", None), ("s1", "1/2", None), ("p1", "1/2", 300)):
        specrob.verify(model, SPEC, set=["eps=0.02"], progress=False, out=tmp_path / name,
                       config=VerifyConfig(backend="bounds", shard=shard, points=points))
    with pytest.raises(MergeError, match=r"verified 300 centres in all|other --points"):
        specrob.merge(tmp_path / "m1", [tmp_path / "s0", tmp_path / "p1"])
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "s1", cut)
    lines = (cut / "results.jsonl").read_text().splitlines(keepends=True)
    (cut / "results.jsonl").write_text("".join(lines[:-1]))  # one centre short
    with pytest.raises(MergeError, match=r"shard 1/2 is unfinished \(\d+ of \d+ centres\)"):
        specrob.merge(tmp_path / "m2", [tmp_path / "s0", cut])
    (cut / "summary.json").unlink()  # interrupted before its summary
    with pytest.raises(MergeError, match="unfinished \\(no summary.json\\)"):
        specrob.merge(tmp_path / "m3", [tmp_path / "s0", cut])
    assert not (tmp_path / "m3").exists()  # nothing written for a refused merge


@pytest.mark.parametrize("options, message", [
    ({"cluster": "local:0"}, "--cluster local:0"),
    ({"cluster": "http://x"}, "--cluster http://x"),
    ({"cluster": "tcp://127.0.0.1"}, "tcp://host:port"),
    ({"shard": "2/2"}, "--shard 2/2"),
    ({"shard": "1-2"}, "--shard 1-2"),
    ({"shard": "0/2", "cluster": "local"}, "give one of them"),
])
def test_cluster_and_shard_options_are_checked(options, message):
    with pytest.raises(OptionError, match=message):
        VerifyConfig(**options)


def test_an_unreachable_scheduler_is_a_clear_error():
    with pytest.raises(ClusterError, match="no Dask scheduler answers"):
        open_client("tcp://127.0.0.1:9", timeout=1)
