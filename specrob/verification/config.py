"""The options of a verification run, one frozen dataclass whose defaults are the CLI's."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from specrob.errors import OptionError
from specrob.options import DEVICES, cluster_ok, device_ok, number, shard_of, whole

BACKENDS = ("auto", "bounds", "bab", "marabou")
BOUNDS = ("ibp", "crown", "alpha-crown", "alpha-crown-all")
SEMANTICS = ("float32", "real")


@dataclass(frozen=True)
class VerifyConfig:
    """Options of `specrob verify` / `specrob.verify` (their defaults are the CLI's)."""

    backend: str = "auto"      # auto (attack, bounds, bab, marabou) | bounds | bab | marabou
    bounds: str = "crown"      # ibp | crown | alpha-crown | alpha-crown-all
    timeout: float = 60.0      # per centre: branch and bound and Marabou together, seconds
    bab_bounds: str = "alpha-crown"  # the bounds inside branch and bound: crown | alpha-crown
    # processes on this machine: with more than one block of centres (and no --cluster or
    # --shard, on the CPU) a LocalCluster of that many workers, else Marabou processes
    workers: int = 1
    points: int | None = None
    steps: int = 20            # attack PGD steps
    restarts: int = 10         # PGD restarts (2 before the margin attack came)
    # "margin": first the query attack of `specrob.search.query_attack` on each centre's
    # box (l_inf balls): one restart per disjunct of the violation (for CR: per wrong class j,
    # maximising f_j - f_y) with an APGD-like step schedule, then PGD; "pgd": PGD alone
    attack: str = "margin"
    margin_steps: int = 100    # steps of the margin attack
    seed: int = 0
    tol: float = 1e-6          # a bound proves an atom when it is > tol
    # what "verified" means: "float32" (default) the property holds for the network in exact
    # arithmetic AND for any float32 execution of it (every proof carries a sound float32 error
    # margin, `floaterror.py`); "real" exact arithmetic only, as VNN-COMP's tools read it
    semantics: str = "float32"
    # where the attacks, CROWN and branch and bound run: cpu | cuda | cuda:N | auto (resolved
    # by `specrob.devices.resolve_device` before the run; part of the run's identity). The
    # counterexamples' checks (onnxruntime, float64) and Marabou stay on the CPU
    device: str = "cpu"
    # where the centres' blocks run: None (this process), "local" / "local:N" (a Dask
    # LocalCluster of N one-thread workers) or "tcp://host:port" (a running Dask scheduler)
    cluster: str | None = None
    # "i/N": run only the blocks k with k % N == i (a shard folder; `specrob merge` joins them)
    shard: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.backend in BACKENDS, f"--backend {self.backend}: choose auto, bounds, bab or "
                                       f"marabou"),
            (self.bounds in BOUNDS, f"--bounds {self.bounds}: choose ibp, crown, alpha-crown or "
                                    f"alpha-crown-all"),
            (self.bab_bounds in ("crown", "alpha-crown"),
             f"bab_bounds {self.bab_bounds}: choose crown or alpha-crown"),
            (self.semantics in SEMANTICS, f"--semantics {self.semantics}: choose float32 or real"),
            (self.attack in ("margin", "pgd"), f"attack {self.attack}: choose margin or pgd"),
            (number(self.timeout) and 0 < self.timeout <= 1e6,
             f"--timeout {self.timeout:g}: give seconds per centre, a number in (0, 1e6]"
             if isinstance(self.timeout, (int, float)) else
             f"--timeout {self.timeout!r}: give seconds per centre, a number in (0, 1e6]"),
            (whole(self.workers, 1), f"--workers {self.workers}: give a whole number >= 1"),
            (isinstance(self.device, str) and device_ok(self.device), f"--device {self.device}: choose {DEVICES}"),
            (self.points is None or whole(self.points, 1),
             f"--points {self.points}: give a whole number >= 1"),
            (self.cluster is None or (isinstance(self.cluster, str) and cluster_ok(self.cluster)),
             f"--cluster {self.cluster}: give local, local:N or tcp://host:port"),
            (self.shard is None or (isinstance(self.shard, str) and shard_of(self.shard) is not None),
             f"--shard {self.shard}: give i/N with 0 <= i < N, e.g. 0/4"),
            (self.cluster is None or self.device in ("cpu", "auto"),
             f"--device {self.device} with --cluster: the cluster's workers compute on their "
             f"CPUs; for GPUs run one --shard i/N per device and join them with `specrob "
             f"merge`"),
            (self.shard is None or self.cluster is None,
             "--shard and --cluster: a shard runs in this process; give one of them"),
        ]
        for ok, message in checks:
            if not ok:
                raise OptionError(message)
        if self.shard is not None:  # one spelling per shard ("00/02" is "0/2")
            object.__setattr__(self, "shard", "{}/{}".format(*shard_of(self.shard) or ()))

    def verdict_options(self) -> dict:
        """The options as a dict without those that do not change verdicts: the number of
        Marabou workers and where the blocks run (`shard` stays when set: a shard folder holds
        part of a run)."""
        d = asdict(self)
        d.pop("workers")
        d.pop("cluster")
        if d["shard"] is None:
            d.pop("shard")
        return d

    def key(self) -> str:
        """A short hash of the options that change verdicts (not the number of workers or
        where the blocks run)."""
        d = self.verdict_options()
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
