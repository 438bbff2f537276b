"""The Marabou back end: one query per centre, encoded from specrob's network IR (not Marabou's
ONNX parser, which lacks Clip, variable-minus-variable Sub and Div) straight into a
`MarabouCore.InputQuery`. Marabou looks for an x in the input set whose output z = f(x)
violates the body; "unsat" proves the body on the whole set.

Soundness of "unsat" rests on the encoding describing a superset of the real counterexamples:
every node is encoded exactly (piecewise-linear constraints, exact linear equations in float64),
interval bounds given to Marabou are outer bounds (widened against rounding), an l_2 ball is
relaxed to its enclosing box, and strict comparisons of the negated body are encoded
non-strictly. A "sat" answer is only a candidate: the caller re-checks it (a tie, a point of the
box outside the l_2 ball, or Marabou's own tolerances, about 1e-6 on a constraint, can make it
spurious).

By default Marabou runs in a worker process, reused across queries and killed when a query
overruns: maraboupy 2.0 can run past its own timeout without end and segfaults on some inputs.
"""
from __future__ import annotations

import atexit
import math
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specrob.network.ir import Network
from specrob.lang import query as q
from specrob.verification.marabou.body import Body, encode_body, encode_region
from specrob.verification.marabou.encoding import Encoding, NotEncodable
from specrob.verification.marabou.layers import encode_network, supports

STATUSES = ("unsat", "sat", "timeout", "error")
# Marabou's exit strings (maraboupy 2.0, MarabouCore.solve) -> ours; anything else is "error"
# (None too: `_solve`'s code when Marabou gave no answer)
_EXIT: dict[str | None, str] = {"unsat": "unsat", "sat": "sat", "TIMEOUT": "timeout"}
# rounding slack on the interval bounds handed to Marabou: relative to the terms' magnitude
SLACK = 1e-9
# The largest magnitude (variable bound, coefficient, constant) at which one Marabou UNSAT is
# taken as it is. Marabou works in doubles with absolute tolerances (its bound tolerance is set
# to 1e-10 below); rounding errors grow with the magnitudes (about M * 1e-16 per operation), and
# on ReLU MLPs whose values reach 1e7-1e8 its bound tightening answered UNSAT for queries with a
# witness (Marabou issue #485; shared case 22). Above this magnitude an UNSAT counts only when a
# second configuration (no bound tightening) agrees.
SAFE_MAGNITUDE = 1e4
# the configuration that must confirm an UNSAT above SAFE_MAGNITUDE
_SECOND_OPINION = "none"


@dataclass(frozen=True, eq=False)
class MarabouResult:
    """Marabou's answer to one query: status in STATUSES, and for "sat" the input x (shape (n,),
    projected onto the region's box) with Marabou's outputs z; `relaxed_region` when an l_2 ball
    was searched as its box, `relaxed_strict` when a strict comparison was made non-strict."""

    status: str
    counterexample: np.ndarray | None = None
    outputs: np.ndarray | None = None
    seconds: float = 0.0
    message: str = ""
    relaxed_region: bool = False
    relaxed_strict: bool = False


def _job(enc: Encoding, x: np.ndarray, z: np.ndarray, timeout: float, verbosity: int) -> dict:
    """Everything Marabou needs, as plain picklable data."""
    return {"size": enc.size, "inputs": x.tolist(), "outputs": z.tolist(),
            "read": x.tolist() + z.tolist(),
            "lo": enc.lo.tolist(), "hi": enc.hi.tolist(), "equations": enc.equations,
            "relus": enc.relus, "leaky": enc.leaky, "abses": enc.abses,
            "disjunctions": enc.disjunctions, "clips": enc.clips,
            "timeout": 0 if math.isinf(timeout) else max(1, math.ceil(timeout)),
            "verbosity": int(verbosity)}


class _Worker:
    """One Marabou process reused across queries (0.3 s to start), killed and restarted when a
    query overruns its hard limit or Marabou crashes: Marabou 2.0 can run past its own timeout
    without end (its main-loop clock stalls in the SoI local search), ignores SIGTERM, and some
    inputs segfault it; none of that may take the caller down."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.owner = os.getpid()
        self.lock = threading.Lock()

    def _start(self) -> None:
        # the worker module from this specrob (an installed one or a checkout on sys.path)
        root = str(Path(__file__).resolve().parents[3])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
        self.proc = subprocess.Popen([sys.executable, "-m", "specrob.verification.marabou.worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        answer = self._receive(_STARTUP_SECONDS)
        if not answer or answer[0] != "ready":
            self.stop()
            raise RuntimeError("the Marabou worker process did not start"
                               + (f" ({answer[1]})" if answer else ""))

    def stop(self) -> None:
        """Kill the process (the next query starts another)."""
        if self.proc is not None and self.owner == os.getpid():
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def _receive(self, seconds: float | None) -> tuple | None:
        """The next answer, None when the deadline passes, ("died", returncode) on EOF."""
        assert self.proc is not None and self.proc.stdout is not None  # started, with pipes
        fd = self.proc.stdout.fileno()
        deadline = None if seconds is None else time.monotonic() + seconds
        buffer = b""
        need = 8
        while len(buffer) < need:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(fd, need - len(buffer))
            if not chunk:
                return ("died", self.proc.wait())
            buffer += chunk
            if need == 8 and len(buffer) >= 8:
                need = 8 + int.from_bytes(buffer[:8], "little")
        return pickle.loads(buffer[8:need])

    def run(self, job: dict, seconds: float | None) -> tuple | None:
        """The worker's answer to a job, None when it was killed after `seconds`, or
        ("died", returncode)."""
        with self.lock:
            if self.owner != os.getpid():  # a forked copy: the process is the parent's
                self.proc, self.owner = None, os.getpid()
            if self.proc is None or self.proc.poll() is not None:
                self._start()
            assert self.proc is not None and self.proc.stdin is not None  # started, with pipes
            data = pickle.dumps(job)
            finished = False
            try:
                self.proc.stdin.write(len(data).to_bytes(8, "little") + data)
                self.proc.stdin.flush()
                answer = self._receive(seconds)
                finished = answer is not None and answer[0] != "died"
                return answer
            except BrokenPipeError:
                return ("died", self.proc.wait())
            finally:
                if not finished:  # killed, died or interrupted: never reuse it
                    self.stop()


_STARTUP_SECONDS = 120.0
_WORKER = _Worker()
atexit.register(_WORKER.stop)


def _hard_limit(timeout: float) -> float | None:
    """When to kill the worker: Marabou's timeout excludes its preprocessing, so leave room."""
    return None if math.isinf(timeout) else 1.5 * timeout + 5.0


def _notes(relaxed_region: bool, relaxed_strict: bool) -> list[str]:
    notes = []
    if relaxed_region:
        notes.append("the l_2 ball was searched as its enclosing box: re-check that a "
                     "counterexample lies in the ball")
    if relaxed_strict:
        notes.append("strict comparisons were encoded non-strictly: a counterexample may be a "
                     "tie")
    return notes


def solve_query(net: Network, query: q.Query, *, timeout: float = 60.0, verbosity: int = 0,
                isolate: bool = True, kill_after: float | None = None,
                max_disjuncts: int = 256, strict_margin: float = 0.0,
                known_bounds: dict | None = None) -> MarabouResult:
    """Ask Marabou, in one query, for an x in the query's input set with z = f(x) violating
    query.body. "unsat" proves the body on the set; "sat" gives a candidate counterexample for
    the caller to re-check; "timeout" after `timeout` seconds (Marabou's, rounded up to whole
    seconds; inf for none); "error" with the reason when the network or body cannot be encoded
    or Marabou fails.

    `isolate` runs Marabou in a reused worker process, killed after `kill_after` seconds
    (default 1.5 timeout + 5) since Marabou can overrun its timeout forever or crash; without
    it, Marabou runs in this process (about 0.3 ms less per query, no protection).
    `max_disjuncts` bounds a disjunction built from nested Or/And; `strict_margin` > 0 encodes
    the negation's `v > 0` as `v >= strict_margin` (no longer sound for violations smaller than
    it, and only meaningful above Marabou's tolerances, about 1e-5). `known_bounds`: sound
    bounds {value name: (lower, upper)} of the network's values over this query's region
    (branch and bound's root bounds, `BabResult.bounds`), given to Marabou as variable
    bounds."""
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if not strict_margin >= 0:
        raise ValueError(f"strict_margin must be >= 0, got {strict_margin}")
    start = time.perf_counter()
    region = query.region
    n, m = net.input_size, net.output_size
    if np.shape(region.centre) != (n,) or query.classes != m:
        raise ValueError(f"the query is for {np.shape(region.centre)} inputs and "
                         f"{query.classes} classes, the network has ({n},) and {m}")
    relaxed_region = region.p not in (1, math.inf) and not math.isinf(region.eps)

    def result(status: str, message: str = "", relaxed_strict: bool = False,
               **kw) -> MarabouResult:
        notes = _notes(relaxed_region, relaxed_strict) if status == "sat" else []
        text = "; ".join(([message] if message else []) + notes)
        return MarabouResult(status, seconds=time.perf_counter() - start, message=text,
                             relaxed_region=relaxed_region, relaxed_strict=relaxed_strict,
                             **kw)

    reason = supports(net)
    if reason is not None:
        return result("error", reason)
    low, high = region.box_low, region.box_high
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        return result("error", "Marabou needs bounded inputs: the input region is unbounded")
    if np.any(low > high):
        return result("unsat", "the input region is empty")
    enc = Encoding()
    try:
        x = encode_region(enc, region)
        z = encode_network(enc, net, x, known_bounds)
        body = Body(enc, z, x, strict_margin)
        truth = encode_body(body, query.body, max_disjuncts)
    except NotEncodable as e:
        return result("error", str(e))
    strict = body.relaxed
    if truth is False:  # NOT body is false: the body holds everywhere
        return result("unsat", "the negated body is false", strict)
    job = _job(enc, x, z, timeout, verbosity)
    code, read, failure = _solve(job, isolate, timeout, kill_after)
    if failure is not None:
        return result(failure[0], failure[1], strict)
    status = _EXIT.get(code)
    magnitude = _magnitude(job)
    if status == "unsat" and magnitude > SAFE_MAGNITUDE:
        second = {**job, "tightening": _SECOND_OPINION}
        code2, read2, failure2 = _solve(second, isolate, timeout, kill_after)
        status2 = _EXIT.get(code2) if failure2 is None else failure2[0]
        if status2 == "sat" and failure2 is None:
            status, read = "sat", read2  # the caller re-checks the point on the model
        elif status2 != "unsat":
            return result("error", f"UNSAT not accepted: the query's magnitudes reach "
                                   f"{magnitude:.3g} > {SAFE_MAGNITUDE:g}, where Marabou's "
                                   f"tightening is unreliable, and a second configuration "
                                   f"(tightening {_SECOND_OPINION}) answered {status2}", strict)
        else:
            return result("unsat", f"UNSAT confirmed by a second Marabou configuration "
                                   f"(tightening {_SECOND_OPINION}): magnitudes reach "
                                   f"{magnitude:.3g} > {SAFE_MAGNITUDE:g}", strict)
    if status is None:
        return result("error", f"Marabou returned {code} {read or ''}".strip(), strict)
    if status == "unsat":
        return result("unsat", f"numerically safe: magnitudes <= {SAFE_MAGNITUDE:g} "
                               f"(largest {magnitude:.3g})", strict)
    if status != "sat":
        return result(status, "", strict)
    if read is None or any(v is None for v in read):
        return result("error", "Marabou answered sat without the values of the inputs and "
                               "outputs", strict)
    point = np.array(read[:n], dtype=np.float64)
    outputs = np.array(read[n:], dtype=np.float64)
    # Marabou's values may leave the box by its tolerances (1e-16 seen): project back
    point = np.clip(point, low, high)
    return result("sat", "", strict, counterexample=point, outputs=outputs)


def _magnitude(job: dict) -> float:
    """The largest finite |bound|, |coefficient| or |constant| of a job."""
    values = [abs(v) for v in job["lo"] + job["hi"] if math.isfinite(v)]
    for _, _, coefs, scalar in job["equations"]:
        values.extend(abs(c) for c in coefs)
        values.append(abs(scalar))
    for disjuncts in job["disjunctions"]:
        for d in disjuncts:
            for _, _, coefs, scalar in d:
                values.extend(abs(c) for c in coefs)
                values.append(abs(scalar))
    return max(values, default=0.0)


def _solve(job: dict, isolate: bool, timeout: float, kill_after: float | None):
    """Run one job: (Marabou's exit string, values read or the log's last line, None), or
    (None, None, (status, message)) when Marabou could not answer."""
    if isolate:
        limit = _hard_limit(timeout) if kill_after is None else kill_after
        try:
            answer = _WORKER.run(job, limit)
        except (OSError, RuntimeError) as e:
            return None, None, ("error", f"cannot run Marabou: {e}")
        if answer is None:
            return None, None, ("timeout", f"Marabou overran its timeout; its process was "
                                           f"killed after {limit:g} s")
        if answer[0] == "died":
            return None, None, ("error", f"Marabou crashed (exit status {answer[1]})")
        if answer[0] == "exception":
            return None, None, ("error", f"Marabou failed: {answer[1]} {answer[2]}".strip())
        _, code, read, log = answer
    else:
        try:
            import maraboupy.MarabouCore as core
            from specrob.verification.marabou.worker import run_job
            code, read = run_job(core, job)
        except Exception as e:  # noqa: BLE001 - ImportError, or a MarabouError in Python
            return None, None, ("error", f"Marabou failed: {type(e).__name__}: {e}")
        log = ""
    if _EXIT.get(code) is None:
        detail = log.strip().splitlines()[-1] if log.strip() else ""
        return code, detail, None
    return code, read, None
