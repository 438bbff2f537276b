"""The options of an evaluation, one frozen dataclass whose defaults are the CLI's."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from specrob.options import (DEVICES, cluster_ok, device_ok, need, number as _number, shard_of,
                             whole as _whole)


@dataclass(frozen=True)
class EvalConfig:
    """Options of `specrob eval` / `specrob.evaluate` (their defaults are the CLI's)."""

    eps: list[float] | None = None  # None: 6 radii from 0 to each property's own eps
    points: int | None = None       # cap on centres per declaration
    samples: int = 100              # uniform samples per centre (accuracy, scores)
    steps: int = 20                 # PGD steps of the attacks
    restarts: int = 2               # PGD restarts
    grid: int = 10                  # grid points of a parameter family
    seed: int = 0
    margins: bool = True            # margin curves for margin scores (uniform ball, H = 1)
    lipschitz: bool = True          # alpha_lim(r) for Lipschitz-shaped properties
    extras: dict = field(default_factory=dict)
    # where the properties' blocks of centres run: None (here), "local" / "local:N" or
    # "tcp://host:port" (a Dask cluster, see specrob/cluster.py); not part of the results
    cluster: str | None = None
    # "i/N": this process computes the properties' blocks k with k % N == i and, for i = 0,
    # the scores and Lipschitz curves; `specrob merge` joins the N shard folders
    shard: str | None = None
    # processes on this machine: > 1 starts a LocalCluster of that many workers ("local:N")
    # when a property has more than one block of centres on the CPU; not part of the results
    workers: int = 1
    # where the network, the attacks and the samplers run: cpu | cuda | cuda:N | auto (an
    # Evaluation resolves it, see specrob/devices.py); part of the results unless "cpu"
    # (random draws on a CUDA device follow another stream)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.eps is not None:
            need(self, all(_number(e) and e >= 0 for e in self.eps), "eps",
                 "radii >= 0 (finite numbers)")
        need(self, self.points is None or _whole(self.points, 1), "points", "a whole number >= 1")
        for name in ("samples", "restarts"):
            need(self, _whole(getattr(self, name), 1), name, "a whole number >= 1")
        need(self, _whole(self.steps, 0), "steps", "a whole number >= 0")
        need(self, _whole(self.grid, 2), "grid", "a whole number >= 2")
        need(self, _whole(self.workers, 1), "workers", "a whole number >= 1")
        need(self, self.cluster is None or (isinstance(self.cluster, str)
                                            and cluster_ok(self.cluster)),
             "cluster", "local, local:N or tcp://host:port")
        need(self, self.shard is None or (isinstance(self.shard, str)
                                          and shard_of(self.shard) is not None),
             "shard", "i/N with 0 <= i < N, e.g. 0/4")
        need(self, isinstance(self.device, str) and device_ok(self.device), "device", DEVICES)
        need(self, self.cluster is None or self.device in ("cpu", "auto"), "device",
             "cpu with --cluster (its workers compute on their CPUs); for GPUs run one "
             "--shard i/N per device and join them with `specrob merge`")
        need(self, self.shard is None or self.cluster is None, "shard",
             "no --cluster with it (a shard runs in this process)")
        if self.shard is not None:  # one spelling per shard ("00/02" is "0/2")
            object.__setattr__(self, "shard", "{}/{}".format(*shard_of(self.shard) or ()))

    def result_options(self) -> dict:
        """The options that determine the results (not where they are computed)."""
        return {k: v for k, v in self.__dict__.items()
                if k not in ("cluster", "workers") and not (k == "shard" and v is None)
                and not (k == "device" and v == "cpu")}

    def key(self) -> str:
        return hashlib.sha1(json.dumps(self.result_options(), sort_keys=True, default=str)
                            .encode()).hexdigest()[:12]
