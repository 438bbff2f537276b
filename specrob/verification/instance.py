"""Deciding a VNN-COMP instance (an ONNX model and a VNN-LIB file, read into queries), and
running a list of instances (`instances.csv`) into a run folder.

`verify_instance` answers, within one timeout for the whole instance (VNN-COMP's semantics):
- "sat" only with a counterexample x in a query's box that violates the property both on
  onnxruntime (the ONNX file, float32) and on the network in float64 (`module.double()`),
  after x is rounded into the box as float32 (the input the model really reads);
- "unsat" only when every query is proved: bound propagation (CROWN), branch and bound
  (`specrob.verification.bab`, when installed) or a Marabou UNSAT;
- "timeout" when the time ran out with queries left open; "unknown" otherwise (the reason).
Stages: a query-level PGD attack, CROWN, branch and bound, Marabou.

semantics "real" (VNN-LIB's default, as VNN-COMP tools read it): proofs are about the network in
exact arithmetic. "float32": proofs also carry a sound float32 error margin (`floaterror`).
"""
from __future__ import annotations

import contextlib
import copy
import csv
import importlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from specrob.errors import SpecrobError
from specrob.network.oracle import Oracle
from specrob.lang import query as q

STATUSES = ("unsat", "sat", "timeout", "unknown")
# of the time left after the attack and the bounds, for branch and bound; Marabou gets the rest
# (on VNN-COMP 2021 mnistfc, Marabou decided nothing that branch and bound left open)
BAB_SHARE = 0.75


class InstanceError(SpecrobError):
    """An instances.csv or instance that cannot be run: the file, the row, what was expected."""


@dataclass(frozen=True)
class InstanceResult:
    status: str                       # unsat | sat | timeout | unknown
    method: str                       # the stage that decided it (or the last one that ran)
    seconds: float
    reason: str = ""
    x: np.ndarray | None = None       # sat: the counterexample (n,), float32 values
    y: np.ndarray | None = None       # sat: onnxruntime's outputs at x (m,)
    stages: dict = field(default_factory=dict)  # seconds per stage


def snap_box(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """x as float32 values inside [low, high] exactly: coordinates rounded to float32 and
    moved one float32 step inwards where rounding left the box (float64 result)."""
    y = np.clip(np.asarray(x, np.float64), low, high).astype(np.float32)
    above = y.astype(np.float64) > high
    y[above] = np.nextafter(y[above], np.float32(-np.inf))
    below = y.astype(np.float64) < low
    y[below] = np.nextafter(y[below], np.float32(np.inf))
    return y.astype(np.float64)


class _Checker:
    """Re-checks candidate counterexamples: inside the box as float32, the property violated
    on onnxruntime and in float64."""

    def __init__(self, oracle: Oracle, exact: torch.nn.Module):
        self.oracle, self.exact = oracle, exact

    def __call__(self, query: q.Query, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The first confirmed point of xs (K, n) and its onnxruntime outputs, or None."""
        low, high = query.region.box_low, query.region.box_high
        xs = np.stack([snap_box(x, low, high) for x in np.atleast_2d(xs)])
        inside = np.all((xs >= low) & (xs <= high), axis=1)
        if not inside.any():
            return None
        xs = xs[inside]
        deployed = self.oracle(xs)
        with torch.no_grad():
            exact = self.exact(torch.tensor(xs, dtype=torch.float64)).reshape(len(xs), -1)
        exact = exact.numpy()
        violation = q.negate(query.body)
        for k in range(len(xs)):
            if q.holds(violation, deployed[k], xs[k]) and not q.holds(query.body, deployed[k], xs[k]) \
                    and q.holds(violation, exact[k], xs[k]) and not q.holds(query.body, exact[k], xs[k]):
                return xs[k], deployed[k]
        return None


def _bab():
    """specrob.verification.bab.branch_and_bound, or None with the reason."""
    try:
        return importlib.import_module("specrob.verification.bab").branch_and_bound, ""
    except ImportError as exc:
        return None, f"branch and bound skipped (specrob.verification.bab not available: {exc})"


def verify_instance(onnx_path: str | Path, net, module: torch.nn.Module, queries: list[q.Query],
                    *, timeout: float, semantics: str = "real", seed: int = 0,
                    restarts: int = 100, attack_steps: int = 100, bounds: str = "crown",
                    tol: float = 1e-6, oracle: Oracle | None = None, device: str = "cpu"
                    ) -> InstanceResult:
    """Decide one instance: is the property (every query's body) true on every query's box?
    `timeout` covers everything (attack, bounds, branch and bound, Marabou); `device`: where
    the attack, the bounds and branch and bound run (cpu, cuda:N; checks and Marabou: CPU)."""
    from specrob.search.query_attack import attack_queries
    from specrob.verification.pipeline import bounds_stage

    if semantics not in ("real", "float32"):
        raise ValueError(f"semantics must be real or float32, got {semantics!r}")
    start = time.perf_counter()
    deadline = start + timeout
    stages: dict[str, float] = {}
    left = lambda: deadline - time.perf_counter()  # noqa: E731

    def done(status, method, reason="", x=None, y=None):
        for name, since in running:  # a stage that decided the instance
            stages[name] = stages.get(name, 0.0) + time.perf_counter() - since
        running.clear()
        return InstanceResult(status, method, time.perf_counter() - start, reason, x, y,
                              {k: round(v, 3) for k, v in stages.items()})

    running: list = []  # (stage, since) of the stage in progress

    @contextlib.contextmanager
    def timed(name):
        running.append((name, time.perf_counter()))
        try:
            yield
        finally:
            if running:  # not already counted by done()
                name, since = running.pop()
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - since

    if not queries:
        return done("unsat", "read", "no input satisfies the input constraints")
    n, m = net.input_size, net.output_size
    for query in queries:
        if query.region.centre.shape != (n,) or query.classes != m:
            raise InstanceError(f"{onnx_path}: the model maps {n} inputs to {m} outputs; the "
                                f"VNN-LIB file declares {query.region.centre.shape[0]} inputs "
                                f"X_i and {query.classes} outputs Y_j")
    oracle = oracle or Oracle(onnx_path)
    exact = copy.deepcopy(module).double().eval()
    check = _Checker(oracle, exact)

    # (a) attack
    with timed("attack"):
        torch.manual_seed(seed)
        points, values = attack_queries(copy.deepcopy(module).float().to(device), queries,
                                        restarts=restarts, steps=attack_steps, seed=seed,
                                        deadline=start + min(0.25 * timeout, 30.0),
                                        device=device)
        for k, query in enumerate(queries):
            promising = points[k][values[k] >= -1e-6]
            found = check(query, promising) if len(promising) else None
            if found is not None:
                return done("sat", "attack", "", *found)
    if left() <= 0:
        return done("timeout", "attack", f"timed out after {timeout:g} s (attack)")

    open_queries = list(queries)
    if semantics == "float32":
        with timed("bounds"):
            open_queries = _float32_margins(net, open_queries)
        if open_queries is None:
            return done("unknown", "float32", "no float32 error bound for this network: "
                                              "--semantics real verifies the exact network")
    # (b) bound propagation
    with timed("bounds"):
        try:
            proved = bounds_stage(net, open_queries, bounds, tol, device)
        except NotImplementedError:
            proved = [False] * len(open_queries)
    open_queries = [query for query, ok in zip(open_queries, proved) if not ok]
    if not open_queries:
        return done("unsat", bounds)
    if bounds != "alpha-crown" and left() > 0:  # optimised slopes: often enough on small nets
        with timed("bounds"):
            try:
                proved = bounds_stage(net, open_queries, "alpha-crown", tol, device)
            except NotImplementedError:
                proved = [False] * len(open_queries)
        open_queries = [query for query, ok in zip(open_queries, proved) if not ok]
        if not open_queries:
            return done("unsat", "alpha-crown")
    if left() <= 0:
        return done("timeout", bounds, f"timed out after {timeout:g} s ({bounds} inconclusive)")

    reasons: list[str] = []
    # (c) branch and bound, with BAB_SHARE of the remaining time (Marabou the rest)
    known: dict = {}  # per open query: branch and bound's bounds, for Marabou
    bab, why = _bab()
    if bab is None:
        reasons.append(why)
    else:
        with timed("bab"):
            results = bab(net, open_queries, timeout=BAB_SHARE * left(), method="alpha-crown",
                          device=device)
        rest = []
        for query, r in zip(open_queries, results):
            if r.status == "verified":
                continue
            known[id(query)] = r.bounds
            if r.status == "falsified" and r.counterexample is not None:
                found = check(query, np.asarray(r.counterexample)[None])
                if found is not None:
                    return done("sat", "bab", "", *found)
                reasons.append("branch and bound's counterexample not confirmed on "
                               "onnxruntime and float64")
            elif r.reason:
                reasons.append(f"branch and bound: {r.reason}")
            rest.append(query)
        open_queries = rest
        if not open_queries:
            return done("unsat", "bab")
    # (d) Marabou with the rest of the time
    from specrob.verification.marabou import solve_query
    timed_out = False
    rest = []
    with timed("marabou"):
        for k, query in enumerate(open_queries):
            share = left() / (len(open_queries) - k)
            if share < 1.0:
                timed_out = True
                rest.append(query)
                continue
            result = solve_query(net, query, timeout=math.floor(share),
                                 kill_after=max(1.0, left()),
                                 known_bounds=known.get(id(query)))
            if result.status == "unsat":
                continue
            if result.status == "sat" and result.counterexample is not None:
                found = check(query, np.asarray(result.counterexample)[None])
                if found is None:
                    found = _near(check, query, np.asarray(result.counterexample), seed)
                if found is not None:
                    return done("sat", "marabou", "", *found)
                reasons.append("Marabou's point does not violate the property on onnxruntime "
                               "and in float64 (a tie or rounding)")
            elif result.status == "timeout":
                timed_out = True
            else:
                reasons.append(f"Marabou: {result.status} {result.message}".strip())
            rest.append(query)
    if not rest:
        return done("unsat", "marabou")
    if timed_out or left() <= 0:
        return done("timeout", "marabou", "; ".join([f"timed out after {timeout:g} s with "
                                                     f"{len(rest)} of {len(queries)} "
                                                     f"input boxes open"] + reasons))
    return done("unknown", "marabou", "; ".join(reasons) or "undecided")


def _near(check: _Checker, query: q.Query, x: np.ndarray, seed: int,
          samples: int = 64) -> tuple[np.ndarray, np.ndarray] | None:
    """A confirmed violation near a solver's (tie) point: random steps of 1e-6 .. 1e-2 of the
    box width."""
    gen = np.random.default_rng(seed)
    width = query.region.box_high - query.region.box_low
    for scale in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
        cands = x[None, :] + gen.uniform(-1, 1, (samples, x.shape[0])) * scale * width
        found = check(query, cands)
        if found is not None:
            return found
    return None


def _float32_margins(net, queries: list[q.Query]) -> list[q.Query] | None:
    from specrob.verification.floaterror import float32_error
    from specrob.verification.pipeline import region_arrays
    low, high, eps = region_arrays(queries)
    centres = np.stack([query.region.centre for query in queries])
    try:
        error = float32_error(net, torch.tensor(centres), eps, p=queries[0].region.p,
                              low=low, high=high).numpy()
    except NotImplementedError:
        return None
    return [q.Query(q.strengthen(query.body, error[k]), query.region, query.classes,
                    query.sufficient, query.note) for k, query in enumerate(queries)]


# --- VNN-COMP result files ----------------------------------------------------------------

def result_text(result: InstanceResult) -> str:
    """The VNN-COMP result file: the status on the first line; for sat the counterexample
    ((X_0 v) ... (Y_0 v) ...), values written exactly (float32 inputs, float64 outputs)."""
    if result.status != "sat":
        return result.status + "\n"
    assert result.x is not None and result.y is not None  # sat: both are set
    pairs = [f"(X_{i} {float(v)!r})" for i, v in enumerate(result.x)]
    pairs += [f"(Y_{j} {float(v)!r})" for j, v in enumerate(result.y)]
    return "sat\n(" + "\n ".join(pairs) + ")\n"


def read_result(path: str | Path) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """A VNN-COMP result file back: status, x, y."""
    lines = Path(path).read_text().split("\n", 1)
    status = lines[0].strip()
    if status != "sat":
        return status, None, None
    xs, ys = {}, {}
    for name, value in _pairs(lines[1]):
        (xs if name[0] == "X" else ys)[int(name[2:])] = float(value)
    return status, np.array([xs[i] for i in range(len(xs))]), np.array([ys[j] for j in range(len(ys))])


def _pairs(text: str):
    import re
    return re.findall(r"\(\s*([XY]_\d+)\s+([^\s()]+)\s*\)", text)


# --- instances.csv ------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    """One row of an instances.csv; `name` (the result file's stem and the row's key in
    results.jsonl) is <onnx-stem>_<vnnlib-stem>, with `_row<N>` added when two rows of the CSV
    would share it (same file names in other folders, or a repeated row)."""

    onnx: Path
    vnnlib: Path
    timeout: float
    name: str = ""


def stem_name(onnx: Path, vnnlib: Path) -> str:
    stem = vnnlib.name
    for suffix in (".gz", ".vnnlib"):
        stem = stem[:-len(suffix)] if stem.endswith(suffix) else stem
    return f"{onnx.stem}_{stem}"


def read_instances(path: str | Path) -> list[Instance]:
    """Rows `onnx,vnnlib,timeout`, paths relative to the CSV's folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InstanceError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise InstanceError(f"{path}:{line}: invalid UTF-8 byte 0x{exc.object[exc.start]:02x}; "
                            f"expected a text file of rows onnx,vnnlib,timeout") from None
    rows = []
    for number, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        if len(row) != 3:
            raise InstanceError(f"{path}:{number}: expected 3 columns onnx,vnnlib,timeout; "
                                f"found {len(row)}")
        try:
            timeout = float(row[2])
        except ValueError:
            raise InstanceError(f"{path}:{number}: expected a timeout in seconds in the third "
                                f"column, found '{row[2].strip()}'") from None
        if not timeout > 0:
            raise InstanceError(f"{path}:{number}: the timeout must be positive, found "
                                f"{row[2].strip()}")
        onnx, vnnlib = (path.parent / row[0].strip(), path.parent / row[1].strip())
        for f in (onnx, vnnlib):
            if not f.is_file():
                raise InstanceError(f"{path}:{number}: {f} does not exist")
        rows.append((number, onnx, vnnlib, timeout))
    if not rows:
        raise InstanceError(f"{path}: no instances (expected rows onnx,vnnlib,timeout)")
    from collections import Counter
    stems = Counter(stem_name(o, v) for _, o, v, _ in rows)
    return [Instance(o, v, t, stem_name(o, v) if stems[stem_name(o, v)] == 1
                     else f"{stem_name(o, v)}_row{number}")
            for number, o, v, t in rows]


class InstanceRunner:
    """Runs instances into a run folder: results.jsonl (one row per instance, resumable),
    one VNN-COMP result file <onnx-stem>_<vnnlib-stem>.txt per instance, summary.json."""

    def __init__(self, instances: list[Instance], out: str | Path, *, semantics: str = "real",
                 seed: int = 0, source: str = "", progress: Callable[[dict], None] | None = None,
                 device: str = "cpu"):
        self.instances, self.out = instances, Path(out)
        self.semantics, self.seed, self.source = semantics, seed, source
        self.device = device
        self.progress: Callable[[dict], object] = progress or (lambda row: None)
        self.models: dict[Path, tuple] = {}
        self.done: dict[str, dict] = {}
        self.folder = None

    def identity(self) -> dict:
        from specrob.runfolder import file_identity
        files = {}
        for inst in self.instances:
            for f in (inst.onnx, inst.vnnlib):
                files.setdefault(str(f), file_identity(f)["sha256"])
        return {"instances": [[str(i.onnx), str(i.vnnlib), i.timeout] for i in self.instances],
                "source": self.source, "files": files,
                "options": {"semantics": self.semantics, "seed": self.seed}}

    def open(self, fresh: bool = False) -> int:
        from specrob.runfolder import JsonLines, RunFolder
        names = tuple(f"{i.name}.txt" for i in self.instances)
        if fresh:  # also the result files of the run being discarded
            names += self._previous_names()
        self.folder = RunFolder(self.out, "verify-instances", self.identity(),
                                files=("results.jsonl", "summary.json") + names, fresh=fresh)
        self.folder.open()
        self.lines = JsonLines(self.out / "results.jsonl")
        if self.folder.resumed:
            wanted = {i.name for i in self.instances}
            # a finished instance has its row and its result file; an instance whose file is
            # gone runs again and its new row (the last one) counts
            for row in self.lines.rows():
                if row.get("instance") in wanted and (self.out / f"{row['instance']}.txt").exists():
                    self.done[row["instance"]] = row
        else:
            self.lines.clear()
        return len(self.done)

    def _previous_names(self) -> tuple[str, ...]:
        """The result files a previous instances run in this folder wrote (from its
        run.json), so that --fresh removes them and nothing else."""
        import json
        try:
            old = json.loads((self.out / "run.json").read_text())
            rows = old["identity"]["instances"] if old.get("kind") == "verify-instances" else []
            from collections import Counter
            stems = Counter(stem_name(Path(a), Path(b)) for a, b, _ in rows)
            names = {stem_name(Path(a), Path(b)) for a, b, _ in rows}
            return tuple(f"{n}{suffix}.txt" for n in names
                         for suffix in ([""] if stems[n] == 1 else ["", "_row*"]))
        except (OSError, ValueError, KeyError, TypeError):
            return ()

    def close(self) -> None:
        if self.folder is not None:
            self.folder.close()

    def model(self, path: Path):
        if path not in self.models:
            from specrob.network import load_onnx_checked
            net, module = load_onnx_checked(path)
            self.models = {path: (net, module.eval(), Oracle(path))}  # one model held at a time
        return self.models[path]

    def run(self) -> list[dict]:
        from specrob.runfolder import write_text
        from specrob.verification.vnnlib_read import read_vnnlib
        for inst in self.instances:
            if inst.name in self.done:
                continue
            net, module, oracle = self.model(inst.onnx)
            queries = read_vnnlib(inst.vnnlib)
            result = verify_instance(inst.onnx, net, module, queries, timeout=inst.timeout,
                                     semantics=self.semantics, seed=self.seed, oracle=oracle,
                                     device=self.device)
            write_text(self.out / f"{inst.name}.txt", result_text(result))
            row = {"instance": inst.name, "onnx": str(inst.onnx), "vnnlib": str(inst.vnnlib),
                   "timeout": inst.timeout, "status": result.status, "method": result.method,
                   "seconds": round(result.seconds, 3), "reason": result.reason,
                   "boxes": len(queries), "stages": result.stages}
            self.lines.append(row)
            self.done[inst.name] = row
            self.progress(row)
        return [self.done[i.name] for i in self.instances if i.name in self.done]

    def write_summary(self) -> dict:
        from specrob.runfolder import write_json
        rows = [self.done[i.name] for i in self.instances if i.name in self.done]
        summary = {"instances": len(self.instances), "finished": len(rows),
                   **{s: sum(r["status"] == s for r in rows) for s in STATUSES},
                   "seconds": round(sum(r["seconds"] for r in rows), 3),
                   "semantics": self.semantics}
        write_json(self.out / "summary.json", summary)
        return summary
