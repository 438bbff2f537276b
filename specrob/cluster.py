"""Dask clusters for work that is independent per centre (`specrob verify --cluster`).

Verification is independent per centre, the unit the field shards (VNN-COMP tools and
certified-training benchmarks run one process per shard and merge by hand). specrob hands its
blocks of centres to a `dask.distributed` cluster: a LocalCluster on this machine, or any
running scheduler (with `dask-jobqueue`, a SLURM or PBS cluster). Workers must see the same
files (the ONNX model) at the same paths: on a cluster, a shared file system.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any

from specrob.errors import SpecrobError


class ClusterError(SpecrobError):
    """A cluster that cannot be started or reached."""


def open_client(address: str, *, timeout: float = 30.0) -> Any:
    """A `dask.distributed.Client` for `address`:

    - "local" / "local:N": a LocalCluster of N worker processes (default: the CPU count), one
      thread each (torch's own threads set to 1 in every task);
    - "tcp://host:port": a running scheduler (`dask scheduler`, or dask-jobqueue's
      `SLURMCluster(...).scheduler_address`).

    `timeout`: seconds to wait for a remote scheduler. The caller closes it (`client.close()`, and `client.cluster.close()` for a local one).
    Raises ClusterError when dask.distributed is missing or the scheduler cannot be reached."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of specrob
        raise ClusterError("--cluster needs dask.distributed: pip install 'dask[distributed]'"
                           ) from None
    if address == "local" or address.startswith("local:"):
        workers = int(address[6:]) if address.startswith("local:") else (os.cpu_count() or 1)
        try:
            # the workers ignore Ctrl-C (inherited): this process stops them, quietly
            with _sigint_ignored():
                # processes: each worker has its own interpreter (torch, onnxruntime,
                # Marabou's solver are not shared); no dashboard: nothing to serve here
                cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    silence_logs=logging.CRITICAL,  # shutdown races are not news
                    # dask documents None as "no dashboard"; its annotation says str
                    dashboard_address=None)  # pyright: ignore[reportArgumentType]
        except Exception as exc:  # noqa: BLE001 - ports, permissions, resources
            raise ClusterError(f"--cluster {address}: cannot start a local Dask cluster "
                               f"({type(exc).__name__}: {exc})") from None
        return Client(cluster)
    try:
        return Client(address, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, CommClosedError
        raise ClusterError(f"--cluster {address}: no Dask scheduler answers there "
                           f"({type(exc).__name__}: {exc}); start one with `dask scheduler` "
                           f"and workers with `dask worker {address}`") from None


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while worker processes start (they inherit it); restored after."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave the signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def close_client(client: Any) -> None:
    """Close a client from `open_client`, and its LocalCluster when it started one."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
