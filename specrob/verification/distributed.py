"""A Verifier's blocks of centres on a Dask cluster: one task per block, rows streamed back.

The client keeps the run folder: every row a worker returns is recorded (results.jsonl,
progress) as its block finishes, so an interrupted run resumes like a local one. Blocks draw
their random numbers from `block_seed` and their own centres, so the verdicts are those of a
run in one process (up to time limits: branch and bound and Marabou stop at --timeout).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from specrob.lang import ir
from specrob.verification.config import VerifyConfig


@dataclass(frozen=True)
class _Run:
    """What every task of one run needs (scattered to the workers once)."""

    token: str
    prop: ir.Property
    onnx_path: str
    x0: torch.Tensor
    y: torch.Tensor
    index: list[int]
    config: VerifyConfig


_VERIFIERS: dict[str, Any] = {}  # per worker process: the Verifier of each run it serves


def _verify_block(run: _Run, k: int, skip: tuple[int, ...]) -> tuple[list[dict], dict, float]:
    """On a worker: verify block k (positions in `skip` are done already). Returns its rows,
    the seconds per stage it spent, and its largest float32 error bound."""
    from specrob.network import load_onnx_checked
    from specrob.verification.pipeline import Verifier
    torch.set_num_threads(1)
    verifier = _VERIFIERS.get(run.token)
    if verifier is None:
        _VERIFIERS.clear()  # one run at a time per worker: free the previous one
        net, module = load_onnx_checked(Path(run.onnx_path))
        # Marabou in this process: a Dask worker is a daemon and cannot start a process pool
        config = replace(run.config, workers=1, cluster=None)
        verifier = Verifier(run.prop, run.onnx_path, net, module, run.x0, run.y, config,
                            index=run.index)
        _VERIFIERS[run.token] = verifier
    before = dict(verifier.stage_seconds)
    verifier.run([k], skip=frozenset(skip))
    rows = [verifier.done[i] for i in verifier.block(k) if i not in skip and i in verifier.done]
    spent = {s: verifier.stage_seconds[s] - before.get(s, 0.0) for s in verifier.stage_seconds}
    return rows, spent, verifier.float32_error_max


def run_on_cluster(verifier, client, blocks: list[int]) -> None:
    """Verify `blocks` of `verifier` on the cluster of `client` (a dask.distributed Client),
    recording each row in `verifier` (its run folder and progress) as its block finishes."""
    from dask.distributed import as_completed
    run = _Run(uuid.uuid4().hex, verifier.prop, str(verifier.onnx_path), verifier.x0.float(),
               verifier.y, list(verifier.index), verifier.config)
    shared = client.scatter(run, broadcast=True)
    futures = []
    for k in blocks:
        skip = tuple(i for i in verifier.block(k) if i in verifier.done)
        if len(skip) < len(verifier.block(k)):
            futures.append(client.submit(_verify_block, shared, k, skip, pure=False))
    try:
        for future in as_completed(futures):
            rows, spent, error = future.result()
            for row in rows:
                verifier.record(row)
            for stage, seconds in spent.items():
                verifier.stage_seconds[stage] = verifier.stage_seconds.get(stage, 0.0) + seconds
            verifier.float32_error_max = max(verifier.float32_error_max, error)
    finally:
        for future in futures:
            future.cancel()
