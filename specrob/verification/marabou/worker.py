"""The Marabou worker process: `python -m specrob.verification.marabou.worker` reads
length-prefixed pickled jobs (plain data: variables, bounds, equations, piecewise-linear
constraints, options) on stdin and answers on stdout. It imports only maraboupy (no numpy, torch
or the rest of specrob at run time), so it starts in about 0.3 s; the caller
(`solver._Worker`) kills it when a query overruns, since Marabou 2.0 can run past its own
timeout and ignores SIGTERM.
"""
from __future__ import annotations


def _core_equation(core, literal):
    """A MarabouCore.Equation from a literal (kind, variables, coefficients, scalar)."""
    kind, variables, coefs, scalar = literal
    eq = core.Equation(getattr(core.Equation, kind))
    for c, v in zip(coefs, variables):
        eq.addAddend(c, v)
    eq.setScalar(scalar)
    return eq


def _build(core, job):
    """The MarabouCore.InputQuery of a job."""
    import math
    ipq = core.InputQuery()
    ipq.setNumberOfVariables(job["size"])
    for i, v in enumerate(job["inputs"]):
        ipq.markInputVariable(v, i)
    outputs = job["outputs"]
    if len(set(outputs)) == len(outputs) and not set(outputs) & set(job["inputs"]):
        for i, v in enumerate(outputs):
            ipq.markOutputVariable(v, i)
    for v, (lo, hi) in enumerate(zip(job["lo"], job["hi"])):
        if math.isfinite(lo):
            ipq.setLowerBound(v, lo)
        if math.isfinite(hi):
            ipq.setUpperBound(v, hi)
    for literal in job["equations"]:
        ipq.addEquation(_core_equation(core, literal))
    for b, f in job["relus"]:
        core.addReluConstraint(ipq, b, f)
    for b, f, alpha in job["leaky"]:
        core.addLeakyReluConstraint(ipq, b, f, alpha)
    for b, f in job["abses"]:
        core.addAbsConstraint(ipq, b, f)
    for disjuncts in job["disjunctions"]:
        core.addDisjunctionConstraint(ipq, [[_core_equation(core, lit) for lit in d]
                                            for d in disjuncts])
    # last: each clip allocates its auxiliary variables after the current ones
    for b, f, low, high in job["clips"]:
        core.addClipConstraint(ipq, b, f, low, high)
    return ipq


def _configure(core, job):
    """Explicit options: MarabouCore.Options() starts from the process-wide settings of the
    last solve, so every field that matters is set. Single-threaded; timeout in whole seconds."""
    o = core.Options()
    o._numWorkers, o._snc, o._numBlasThreads = 1, False, 1
    o._solveWithMILP, o._dumpBounds, o._produceProofs = False, False, False
    o._restoreTreeStates, o._performLpTighteningAfterSplit = False, False
    o._initialDivides, o._onlineDivides, o._initialTimeout, o._timeoutFactor = 0, 2, 5, 1.5
    o._splitThreshold, o._splittingStrategy, o._sncSplittingStrategy = 20, "auto", "auto"
    o._tighteningStrategy = job.get("tightening", "deeppoly")
    o._milpTightening, o._milpSolverTimeout = "none", 0
    o._preprocessorBoundTolerance, o._lpSolver = 1e-10, "native"
    o._verbosity, o._timeoutInSeconds = job["verbosity"], job["timeout"]
    return o


def run_job(core, job):
    """Solve a job: (Marabou's exit string, the values of job["read"] when "sat", else None)."""
    code, values, _ = core.solve(_build(core, job), _configure(core, job), "")
    read = [values.get(v) for v in job["read"]] if code == "sat" else None
    return code, read


def _serve():
    """The worker's loop: length-prefixed pickled jobs on stdin, answers on the original
    stdout; Marabou's own printing goes to stderr, or is captured and returned when quiet."""
    import os
    import pickle
    import sys
    import tempfile

    import maraboupy.MarabouCore as core
    try:  # Linux: die with the parent, so a solve that never ends is never orphaned
        import ctypes
        import signal
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except Exception:  # noqa: BLE001, S110 - elsewhere the atexit kill has to do
        pass
    import signal
    # Ctrl-C reaches the whole process group: the parent decides (it stops this worker), so
    # the worker does not die with a KeyboardInterrupt traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    saved = (os.dup(1), os.dup(2))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker

    def send(answer):
        data = pickle.dumps(answer)
        channel.write(len(data).to_bytes(8, "little") + data)
        channel.flush()

    send(("ready",))
    jobs = sys.stdin.buffer
    while True:
        header = jobs.read(8)
        if len(header) < 8:
            return
        job = pickle.loads(jobs.read(int.from_bytes(header, "little")))
        quiet = job["verbosity"] == 0
        if quiet:
            log.seek(0)
            log.truncate()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
        try:
            answer = ("done",) + run_job(core, job)
        except Exception as e:  # noqa: BLE001 - reported to the caller as an error
            answer = ("exception", f"{type(e).__name__}: {e}")
        finally:
            if quiet:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
        text = ""
        if quiet:
            log.seek(0)
            text = log.read().decode(errors="replace")[-2000:]
        send(answer + (text,))


if __name__ == "__main__":
    _serve()
