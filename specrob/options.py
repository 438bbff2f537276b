"""Checks shared by the option dataclasses (`training.config`, `estimate.config`,
`verification.config`): torch-free, so `specrob --help` stays fast."""
from __future__ import annotations

import math

from specrob.errors import OptionError


def whole(value, least: int) -> bool:
    """An int (not a bool) >= least."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def number(value) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def need(options, ok: bool, name: str, what: str) -> None:
    """Raise OptionError "name = value: expected what" unless `ok` (value read from
    `options`)."""
    if not ok:
        raise OptionError(f"{name} = {getattr(options, name)!r}: expected {what}")


def cluster_ok(cluster: str) -> bool:
    """A --cluster address: local, local:N (N >= 1) or tcp://host:port."""
    if cluster == "local":
        return True
    if cluster.startswith("local:"):
        return cluster[6:].isdigit() and int(cluster[6:]) >= 1
    host, sep, port = cluster.removeprefix("tcp://").rpartition(":")
    return cluster.startswith("tcp://") and bool(sep and host and port.isdigit())


def shard_of(shard: str) -> tuple[int, int] | None:
    """A --shard value "i/N" as (i, N) with 0 <= i < N, else None."""
    i, sep, n = shard.partition("/")
    if not (sep and i.isdigit() and n.isdigit()):
        return None
    return (int(i), int(n)) if int(i) < int(n) else None


DEVICES = "cpu, cuda, cuda:N or auto"


def device_ok(device: str) -> bool:
    """A --device value: cpu, cuda, cuda:N (N a whole number) or auto (cuda when torch sees
    one, else cpu); resolved by `specrob.devices.resolve_device`."""
    return device in ("cpu", "cuda", "auto") or (device.startswith("cuda:")
                                                  and device[5:].isdigit())
