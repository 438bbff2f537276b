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
from specrob.options import shard_of
from specrob.runfolder import (RUN_FILE, RunFolder, RunFolderError, differences, read_json,
                               write_json)

SHARD_KEYS = ("shard", "blocks", "block_count")


class EvalMergeError(RunFolderError):
    """Eval shard folders that do not make one run."""


def _record(folder: Path) -> tuple[dict, tuple[int, int]]:
    path = folder / RUN_FILE
    record = read_json(path) if path.is_file() else None
    config = ((record or {}).get("identity") or {}).get("config") if isinstance(record, dict) \
        else None
    if not isinstance(record, dict) or record.get("kind") != "eval" or \
            not isinstance(config, dict):
        raise EvalMergeError(f"{folder}: not an eval run folder (no eval {RUN_FILE})")
    shard = shard_of(str(config["shard"])) if config.get("shard") else None
    if shard is None:
        raise EvalMergeError(f"{folder}: a whole run, not a shard (no --shard i/N)")
    return record, shard


def _without_shard(record: dict) -> dict:
    identity = dict(record.get("identity") or {})
    identity["config"] = {k: v for k, v in (identity.get("config") or {}).items()
                          if k != "shard"}
    return {"specrob": record.get("specrob"), "identity": identity}


def merge(out: str | Path, shards: Sequence[str | Path], *, fresh: bool = False) -> dict:
    """Merge the N shard folders of one eval run into `out`; returns its results (what
    results.json holds). Raises EvalMergeError for folders that are not the N finished shards
    of one run, RunFolderError for an `out` holding another run (unless `fresh`)."""
    folders = [Path(s) for s in shards]
    records = [_record(f) for f in folders]
    by_shard: dict[int, Path] = {}
    n = records[0][1][1]
    for folder, (record, (i, count)) in zip(folders, records):
        if count != n:
            raise EvalMergeError(f"{folder}: shard {i}/{count}, but {folders[0]} is one of {n}")
        if i in by_shard:
            raise EvalMergeError(f"{folder} and {by_shard[i]} are both shard {i}/{n}")
        differ = differences(_without_shard(records[0][0]), _without_shard(record))
        if differ:
            raise EvalMergeError(f"{folder} belongs to another run than {folders[0]} "
                                 f"(differing: {', '.join(differ[:8])})")
        by_shard[i] = folder
    missing = sorted(set(range(n)) - set(by_shard))
    if missing:
        raise EvalMergeError(f"shard {missing[0]}/{n} missing; run `specrob eval ... --shard "
                             f"{missing[0]}/{n}`" + (" (and the others)" if len(missing) > 1
                                                     else ""))
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
    identity = _without_shard(records[0][0])["identity"]
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
