"""Join the shard folders of one eval run (`specrob eval --shard i/N`) into one folder.

Each shard computed the blocks k with k % N == i of every property's security curve (saved
in <shard>/blocks/) and shard 0 also the scores and Lipschitz curves; the merged results.json
is the one a single process writes (the blocks joined by `security.combine`), in a folder
bound to the run's identity without the shard.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from specrob.estimate.config import EvalConfig
from specrob.estimate.security import combine, load_block
from specrob.runfolder import (RunFolder, ShardError, read_json, shard_folders, without_shard,
                               write_json)

SHARD_KEYS = ("shard", "blocks", "block_count")


EvalMergeError = ShardError  # eval shard folders that do not make one run


def merge(out: str | Path, shards: Sequence[str | Path], *, fresh: bool = False) -> dict:
    """Merge the N shard folders of one eval run into `out`; returns its results (what
    results.json holds). Raises EvalMergeError for folders that are not the N finished shards
    of one run, RunFolderError for an `out` holding another run (unless `fresh`)."""
    folders = [Path(s) for s in shards]
    records, indices, n = shard_folders(folders, kind="eval", options_key="config")
    by_shard = dict(zip(indices, folders))
    results = {i: _results(by_shard[i], i, n) for i in range(n)}
    base = results[0]
    properties = {}
    for name, entry in base["properties"].items():
        count = entry["block_count"]
        parts = []
        for k in range(count):
            path = by_shard[k % n] / "blocks" / f"{name}-{k}.pt"
            if not path.is_file():
                raise EvalMergeError(f"{by_shard[k % n]}: block {k} of property {name} is "
                                     f"missing; run its `specrob eval ... --shard {k % n}/{n} "
                                     f"--fresh` again")
            parts.append(load_block(path))
        merged = {key: value for key, value in entry.items() if key not in SHARD_KEYS}
        merged["points"] = [r.as_dict() for r in combine(parts)]
        properties[name] = merged
    config = {k: v for k, v in base["config"].items() if k != "shard"}
    merged_results = {**{k: v for k, v in base.items() if k != "finished"}, "config": config,
                      "key": EvalConfig(**config).key(), "properties": properties}
    identity = without_shard(records[0], "config")["identity"]
    with RunFolder(out, "eval", identity, files=("results.json", "*.png", "blocks"),
                   fresh=fresh) as folder:
        from specrob.runfolder import json_default
        write_json(folder.file("results.json"), merged_results, default=json_default)
    return merged_results


def _results(folder: Path, i: int, n: int) -> dict:
    path = folder / "results.json"
    results = read_json(path) if path.is_file() else None
    if not isinstance(results, dict) or not results.get("finished"):
        raise EvalMergeError(f"{folder}: shard {i}/{n} is unfinished; run its `specrob eval "
                             f"... --shard {i}/{n}` again to finish it")
    return results
