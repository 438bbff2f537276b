"""Join the shard folders of one verify run (`specrob verify --shard i/N`) into one folder.

Each shard folder is bound to the run's identity with its shard (run.json); the merged folder
is bound to the identity without it, which is the identity of the same run in one process: a
later `specrob verify` with the same settings pointed at it finds every centre done.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from specrob.runfolder import (JsonLines, RunFolder, ShardError, read_json, shard_folders,
                               without_shard, write_json)
from specrob.verification.pipeline import BLOCK, count_verdicts

FILES = ("results.jsonl", "summary.json", "verify.json", "counterexamples.png")


MergeError = ShardError  # shard folders that do not make one run


def merge(out: str | Path, shards: Sequence[str | Path], *, fresh: bool = False
          ) -> tuple[dict, list[dict]]:
    """Merge the shard folders `shards` (all N shards i/N of one run) into `out`:
    results.jsonl with every centre's row (by index) and summary.json (counts from the rows,
    seconds per stage summed, the largest float32 error bound). Returns (summary, rows).

    Raises MergeError when the folders are not the N shards of one run (other settings,
    model, property or specrob version; a missing or repeated shard; two rows of one centre
    that disagree), RunFolderError for an `out` that holds another run (unless `fresh`)."""
    folders = [Path(s) for s in shards]
    records, indices, n = shard_folders(folders, kind="verify", options_key="options")
    rows: dict[int, dict] = {}
    total = None
    for folder, i in zip(folders, indices):
        shard_rows = JsonLines(folder / "results.jsonl").rows()
        centres = _centres_of(folder, i, n)
        if total is not None and centres != total:
            raise MergeError(f"{folder} verified {centres} centres in all, another shard "
                             f"{total} (other --points or data); rerun the shards alike")
        total = centres
        expected = sum(len(range(k * BLOCK, min((k + 1) * BLOCK, centres)))
                       for k in range(i, -(-centres // BLOCK), n))
        if len(shard_rows) < expected:
            raise MergeError(f"{folder}: shard {i}/{n} is unfinished ({len(shard_rows)} of "
                             f"{expected} centres); run its `specrob verify ... --shard "
                             f"{i}/{n}` again to finish it")
        for row in shard_rows:
            old = rows.get(row["index"])
            if old is not None and old.get("centre") != row.get("centre"):
                raise MergeError(f"{folder}: centre {row['index']} differs from another "
                                 f"shard's (other data?)")
            rows.setdefault(row["index"], row)
    merged = [rows[k] for k in sorted(rows)]
    identity = without_shard(records[0], "options")["identity"]
    with RunFolder(out, "verify", identity, files=FILES, fresh=fresh) as folder:
        lines = JsonLines(folder.file("results.jsonl"))
        lines.clear()
        for row in merged:
            lines.append(row)
        summary = _summary(folders, merged)
        write_json(folder.file("summary.json"), summary)
    return summary, merged


def _centres_of(folder: Path, i: int, n: int) -> int:
    """How many centres the whole run has, from a finished shard's summary.json."""
    path = folder / "summary.json"
    if not path.is_file():
        raise MergeError(f"{folder}: shard {i}/{n} is unfinished (no summary.json); run its "
                         f"`specrob verify ... --shard {i}/{n}` again to finish it")
    centres = read_json(path).get("centres") or {}
    total = centres.get("used", centres.get("given"))
    if not isinstance(total, int):
        raise MergeError(f"{path}: no count of the run's centres; rerun the shard")
    return total


def _summary(folders: list[Path], rows: list[dict]) -> dict:
    """The shards' summaries joined: counts from the rows, seconds summed, error bound max."""
    parts = []
    for folder in folders:
        path = folder / "summary.json"
        parts.append(read_json(path) if path.is_file() else {})
    base = next((p for p in parts if p), {})
    seconds: dict[str, float] = {}
    for part in parts:
        for stage, value in (part.get("stage_seconds") or {}).items():
            seconds[stage] = round(seconds.get(stage, 0.0) + float(value), 3)
    errors = [float(p["float32_error_max"]) for p in parts
              if isinstance(p.get("float32_error_max"), (int, float))]
    return {**base, **count_verdicts(rows), "stage_seconds": seconds,
            "float32_error_max": max(errors, default=0.0), "shards": len(folders)}
