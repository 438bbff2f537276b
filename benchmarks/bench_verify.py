"""`specrob verify` on CR: specrob's Marabou path against maraboupy called directly, the
pipeline (attack + bounds + Marabou) against Marabou alone, and IBP / CROWN / alpha-CROWN.

Networks: the digits MLP 64 -> 32 ReLU -> 10 with its logits clamped to [-100, 100] (a few
epochs of plain Adam here) and, when Fashion-MNIST is installed, the seed-003 network
(examples/fashion_mnist_net.py: 784 -> 100 ReLU -> 10 + clamp, one epoch). Each is exported
with torch.onnx.export(dynamo=False) to a temporary directory and loaded with
load_onnx_checked. Property: CR of specs/cr.rspec (l_inf) at a few small eps, on the first
--points test points (CR's centres: `test`, not only the correctly classified ones). One query
per point and eps from Encoder(prop, n, m).query(Centre(x0, y, f(x0))).

(a) Marabou per query, each query solved by every side below, the sides interleaved in a
    rotating order, `--repeat` times when a query is fast (once when it takes > 1 s):
      specrob    solve_query(net, query, timeout) as the pipeline calls it: encoding the
                 network IR and the negated body in Python (interval bounds, stable ReLUs
                 removed, non-binding clips dropped), pickling the job to specrob's reused
                 Marabou worker process, building the MarabouCore.InputQuery there, solving,
                 reading the answer back;
      in-proc    solve_query(..., isolate=False): the same without the worker process;
      its-solve  MarabouCore.solve alone on the InputQuery specrob builds (specrob's private
                 _build / _configure on its encoding; built untimed) - Marabou's own share;
      direct     a hand-written MarabouCore.InputQuery from the torch weights: n input
                 variables bounded by [max(x0 - eps, 0), min(x0 + eps, 1)], one variable per
                 hidden pre-activation, ReLU output, logit and clamped logit, one equation per
                 affine row, a ReLU constraint per hidden neuron, a Clip constraint per logit,
                 and the negated property as ONE disjunction over j != y of z_j - z_y >= 0;
                 no bounds on the inner variables (Marabou's preprocessing finds them);
                 options Marabou.createOptions(verbosity=0, timeoutInSeconds=T). Shown as
                 build + solve (what a maraboupy user pays) and solve alone (d-solve).
    in-proc, its-solve and direct run in a forked helper process of this benchmark (timed
    inside it, so the pipe is not counted) that is killed if Marabou overruns its timeout.
    Printed: the median ms per query, the ratio specrob / direct (aim <= 1.2, also against
    direct's solve alone), and whether all sides give the same sat/unsat answer on every
    query (timeouts aside). A direct "sat" point is re-checked on the torch model.
(b) The pipeline: Verifier(...).run() with VerifyConfig(backend="auto") (attack, then CROWN
    bounds, then Marabou on the rest) against VerifyConfig(backend="marabou") (attack, then
    Marabou on the rest: the Verifier always attacks first) on the same points: the share of
    points decided before Marabou, the wall time of run() (the onnxruntime session is built
    before), the verdict counts, and agreement wherever both decide. "Marabou on every point"
    is the sum of the specrob column of (a) over the points.
(c) Bound propagation alone: bounds_stage(net, queries, method, tol=1e-6) on every query, for
    IBP, CROWN and alpha-CROWN (20 slope steps): certified fraction and ms per batch (the
    best of --repeat runs), cross-checked against spec_bounds on the CR margin rows
    f_y - f_j (j != y) computed directly, and against Marabou's complete answer from (a):
    certified points can be at most Marabou's unsat ones.
Every cross-check that fails is a soundness or consistency bug and is listed at the end with
the network's ONNX file kept for a reproducer.

    python benchmarks/bench_verify.py [--points 40] [--fashion-points 20] [--eps 0.005,0.01]
        [--fashion-eps 0.002,0.005] [--timeout 20] [--repeat 3] [--keep DIR]
"""
from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import specrob  # noqa: E402
from specrob.data import DataError, load_data  # noqa: E402
from specrob.estimate.evaluation import select_centres  # noqa: E402
from specrob.network import load_onnx_checked  # noqa: E402
from specrob.network.model_file import build_model  # noqa: E402
from specrob.bounds import spec_bounds  # noqa: E402
from specrob.lang.encode import Centre, Encoder  # noqa: E402
from specrob.verification.marabou import solve_query  # noqa: E402
from specrob.verification.pipeline import Verifier, VerifyConfig, bounds_stage  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CR_SPEC = ROOT / "specs" / "cr.rspec"
from specrob.network.model_file import load_module  # noqa: E402
from common import train_quickly  # noqa: E402 - benchmarks/ is on sys.path when run

METHODS = ("ibp", "crown", "alpha-crown")
TOL = 1e-6
SIDES = ("specrob", "in-proc", "its-solve", "direct")
DECIDED = ("sat", "unsat")
ISSUES: list[str] = []


# the clamp layer of the seed-003 network, from the example model file
Clamp = load_module(ROOT / "examples" / "fashion_mnist_net.py").Clamp


def issue(text: str) -> None:
    ISSUES.append(text)
    print(f"  !! {text}")


# --- the helper process: in-process Marabou solves, killable ---------------------------------

def _direct_build(core, w1, b1, w2, b2, low, high, x0, y, eps):
    """The hand-written InputQuery (see the module docstring, (a) direct)."""
    n, h, m = len(x0), len(b1), len(b2)
    xs, hs, rs = list(range(n)), list(range(n, n + h)), list(range(n + h, n + 2 * h))
    os_, zs = list(range(n + 2 * h, n + 2 * h + m)), list(range(n + 2 * h + m, n + 2 * h + 2 * m))
    ipq = core.InputQuery()
    ipq.setNumberOfVariables(n + 2 * h + 2 * m)
    lo, hi = np.maximum(x0 - eps, low), np.minimum(x0 + eps, high)
    for i in xs:
        ipq.markInputVariable(i, i)
        ipq.setLowerBound(i, float(lo[i]))
        ipq.setUpperBound(i, float(hi[i]))

    def affine(weight, bias, inputs, outputs):
        for row, out in enumerate(outputs):
            eq = core.Equation(core.Equation.EQ)
            for c, v in zip(weight[row].tolist(), inputs):
                eq.addAddend(c, v)
            eq.addAddend(-1.0, out)
            eq.setScalar(-float(bias[row]))  # W x - out = -b
            ipq.addEquation(eq)

    affine(w1, b1, xs, hs)
    for b, f in zip(hs, rs):
        core.addReluConstraint(ipq, b, f)
    affine(w2, b2, rs, os_)
    disjuncts = []
    for j in range(m):
        if j != y:
            eq = core.Equation(core.Equation.GE)
            eq.addAddend(1.0, zs[j])
            eq.addAddend(-1.0, zs[y])
            eq.setScalar(0.0)
            disjuncts.append([eq])
    core.addDisjunctionConstraint(ipq, disjuncts)
    for k, z in enumerate(zs):
        ipq.markOutputVariable(z, k)
    for o, z in zip(os_, zs):  # last: a Clip constraint allocates auxiliary variables
        core.addClipConstraint(ipq, o, z, -100.0, 100.0)
    return ipq, xs


def _specrob_job(net, query, timeout):
    """specrob's own job for a query (its private encoding steps, as solve_query runs them);
    None when the negated body is constant."""
    from specrob.verification.marabou.body import Body, encode_body, encode_region
    from specrob.verification.marabou.encoding import Encoding
    from specrob.verification.marabou.layers import encode_network
    from specrob.verification.marabou.solver import _job
    enc = Encoding()
    x = encode_region(enc, query.region)
    z = encode_network(enc, net, x)
    body = Body(enc, z, x, 0.0)
    if encode_body(body, query.body, 256) is not None:
        return None
    return _job(enc, x, z, timeout, 0)


def _helper(conn) -> None:
    """Loop: ("net", ...) stores the network; ("solve", side, ...) returns (status, seconds,
    extra). Marabou's printing goes to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from maraboupy import Marabou
    from maraboupy import MarabouCore as core
    net = weights = None
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "net":
            _, net, weights = msg
            conn.send(("ok",))
            continue
        _, side, query, y, timeout = msg
        try:
            if side == "in-proc":
                t = time.perf_counter()
                r = solve_query(net, query, timeout=timeout, isolate=False)
                conn.send((r.status, time.perf_counter() - t, r.message))
            elif side == "its-solve":
                from specrob.verification.marabou import solver as mb
                from specrob.verification.marabou import worker
                job = _specrob_job(net, query, timeout)
                if job is None:
                    conn.send(("unsat", 0.0, "constant"))
                    continue
                ipq, options = worker._build(core, job), worker._configure(core, job)
                t = time.perf_counter()
                code, _, _ = core.solve(ipq, options, "")
                conn.send((mb._EXIT.get(code, "error"), time.perf_counter() - t, code))
            else:  # direct
                w1, b1, w2, b2 = weights
                reg = query.region
                t = time.perf_counter()
                ipq, xs = _direct_build(core, w1, b1, w2, b2, reg.low, reg.high, reg.centre,
                                        y, reg.eps)
                t1 = time.perf_counter()
                options = Marabou.createOptions(verbosity=0, timeoutInSeconds=max(
                    1, math.ceil(timeout)))
                code, values, _ = core.solve(ipq, options, "")
                t2 = time.perf_counter()
                point = [values[v] for v in xs] if code == "sat" else None
                status = {"sat": "sat", "unsat": "unsat", "TIMEOUT": "timeout"}.get(code, "error")
                conn.send((status, t2 - t, (t2 - t1, point, code)))
        except Exception as e:  # noqa: BLE001 - reported as an error answer
            conn.send(("error", 0.0, f"{type(e).__name__}: {e}"))


class Helper:
    """The forked helper process, restarted after a kill."""

    def __init__(self) -> None:
        self.proc = None
        self.net = None

    def start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_helper, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        if self.net is not None:
            self.conn.send(("net",) + self.net)
            self.conn.recv()

    def set_net(self, net, weights) -> None:
        self.net = (net, weights)
        if self.proc is None:
            self.start()
        else:
            self.conn.send(("net", net, weights))
            self.conn.recv()

    def solve(self, side: str, query, y: int, timeout: float):
        self.conn.send(("solve", side, query, y, timeout))
        limit = 1.5 * timeout + 5.0
        if not self.conn.poll(limit):
            self.stop()
            self.start()
            return ("timeout", limit, "killed: Marabou overran its timeout")
        try:
            return self.conn.recv()
        except EOFError:
            code = self.proc.exitcode
            self.stop()
            self.start()
            return ("error", 0.0, f"helper died (exit {code})")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
            self.proc = None


# --- (a) ---------------------------------------------------------------------------------

def part_a(helper: Helper, net, module, queries, ys, timeout, repeat, label) -> list[dict]:
    """Per query: every side's status and median seconds."""
    rows = []
    for k, (query, y) in enumerate(zip(queries, ys)):
        times = {s: [] for s in SIDES}
        status, d_solve, d_point = {}, [], None
        reps = repeat
        r = 0
        while r < reps:
            order = SIDES[r % 4:] + SIDES[:r % 4]
            for side in order:
                if side == "specrob":
                    t = time.perf_counter()
                    res = solve_query(net, query, timeout=timeout)
                    answer = (res.status, time.perf_counter() - t, res.message)
                else:
                    answer = helper.solve(side, query, y, timeout)
                st, sec, extra = answer
                if side == "direct" and isinstance(extra, tuple):
                    d_solve.append(extra[0])
                    if extra[1] is not None:
                        d_point = np.asarray(extra[1])
                if st == "error":
                    issue(f"{label} query {k}: {side} answered error: {extra}")
                prev = status.get(side)
                if prev is not None and prev != st and {prev, st} <= set(DECIDED):
                    issue(f"{label} query {k}: {side} answered {prev}, then {st}")
                status[side] = st if prev in (None, "timeout", "error") else prev
                times[side].append(sec)
            if r == 0 and max(max(v) for v in times.values()) > 1.0:
                reps = 1
            r += 1
        decided = {s: v for s, v in status.items() if v in DECIDED}
        if len(set(decided.values())) > 1:
            issue(f"{label} query {k} (y = {y}): answers differ: "
                  + ", ".join(f"{s} {v}" for s, v in status.items()))
        confirmed = None
        if status["direct"] == "sat" and d_point is not None:
            with torch.no_grad():
                z = module(torch.tensor(d_point, dtype=torch.float32)[None]).double()[0]
            margin = float(z[y] - torch.cat([z[:y], z[y + 1:]]).max())
            confirmed = margin <= 1e-5  # a tie (margin ~ 0) violates CR too
        rows.append({"status": status, "time": {s: statistics.median(v) for s, v in
                                                 times.items()},
                     "d_solve": statistics.median(d_solve) if d_solve else math.nan,
                     "confirmed": confirmed})
    return rows


def print_a_row(eps: float, rows: list[dict]) -> None:
    ms = {s: 1000 * statistics.median(r["time"][s] for r in rows) for s in SIDES}
    d_solve = 1000 * statistics.median(r["d_solve"] for r in rows)
    st = [r["status"]["specrob"] for r in rows]
    same = all(len({v for v in r["status"].values() if v in DECIDED}) <= 1 for r in rows)
    undecided = sum(any(v not in DECIDED for v in r["status"].values()) for r in rows)
    sats = [r["confirmed"] for r in rows if r["confirmed"] is not None]
    ratio = ms["specrob"] / ms["direct"]
    print(f"  {eps:>6g} {st.count('unsat'):>5} {st.count('sat'):>4} "
          f"{len(st) - st.count('unsat') - st.count('sat'):>4} "
          f"{ms['specrob']:>8.2f} {ms['in-proc']:>8.2f} {ms['its-solve']:>9.2f} "
          f"{ms['direct']:>8.2f} {d_solve:>8.2f} {ratio:>6.2f}x {ms['specrob'] / d_solve:>6.2f}x"
          f"  {'yes' if same else 'NO'}"
          + (f" ({undecided} with a timeout/error)" if undecided else "")
          + (f"; direct sat re-checked {sum(sats)}/{len(sats)}" if sats else ""))


# --- (b) ---------------------------------------------------------------------------------

def part_b(prop, onnx_path, net, module, x0, y, timeout, label, marabou_rows):
    out = {}
    for backend in ("auto", "marabou"):
        v = Verifier(prop, onnx_path, net, module, x0, y,
                     VerifyConfig(backend=backend, timeout=timeout))
        t = time.perf_counter()
        rows = v.run()
        out[backend] = (time.perf_counter() - t, rows, v.summary())
    auto, mara = out["auto"][1], out["marabou"][1]
    agree = True
    for ra, rm, ma in zip(auto, mara, marabou_rows):
        i = ra["index"]
        decided = {ra["verdict"], rm["verdict"]} - {"unknown"}
        if len(decided) > 1:
            agree = False
            issue(f"{label} point {i}: auto says {ra['verdict']} ({ra['method']}), marabou "
                  f"backend says {rm['verdict']} ({rm['method']})")
        exact = ma["status"]["specrob"]
        for name, r in (("auto", ra), ("marabou", rm)):
            if (r["verdict"], exact) in (("verified", "sat"), ("falsified", "unsat")):
                agree = False
                issue(f"{label} point {i}: {name} backend says {r['verdict']} by {r['method']}, "
                      f"Marabou alone (a) answered {exact}")
    return out, agree


def print_b_row(eps: float, out: dict, agree: bool, alone: float) -> None:
    (ta, _, sa), (tm, _, sm) = out["auto"], out["marabou"]
    by = sa["by_method"]
    attack = sum(c for k, c in by.items() if k.endswith("by attack"))
    bounds = sum(c for k, c in by.items() if not k.endswith(("by attack", "by marabou",
                                                             "by encode")))
    n = sa["points"]
    print(f"  {eps:>6g} {attack:>6} {bounds:>6} {(attack + bounds) / n:>6.0%}   "
          f"{sa['verified']:>3}/{sa['falsified']}/{sa['unknown']} {ta:>7.2f}s   "
          f"{sm['verified']:>3}/{sm['falsified']}/{sm['unknown']} {tm:>7.2f}s "
          f"{ta / tm:>6.2f}x   {alone:>7.2f}s   {'yes' if agree else 'NO'}")
    for backend in ("auto", "marabou"):
        why = Counter(r.get("reason", "") for r in out[backend][1] if r["verdict"] == "unknown")
        for reason, count in why.items():
            print(f"  {'':>6} {backend} unknown x{count}: {reason}")


# --- (c) ---------------------------------------------------------------------------------

def margin_rows(y: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """C (B, m-1, m) with rows e_y - e_j, j != y: CR holds where every row is > 0."""
    C = np.zeros((len(y), m - 1, m))
    for b, label in enumerate(y):
        others = [j for j in range(m) if j != label]
        C[b, np.arange(m - 1), label] = 1.0
        C[b, np.arange(m - 1), others] = -1.0
    return C, np.zeros((len(y), m - 1))


def part_c(net, queries, x0, y, eps, repeat, label, marabou_rows, pipeline_rows):
    res = {}
    C, d = margin_rows(y, net.output_size)
    reg = queries[0].region
    for method in METHODS:
        best = math.inf
        for r in range(repeat):
            t = time.perf_counter()
            proved = bounds_stage(net, queries, method, TOL)
            best = min(best, time.perf_counter() - t)
            if best > 2.0:
                break
        lower = spec_bounds(net, torch.tensor(x0), eps, p=reg.p, low=reg.low, high=reg.high,
                            C=torch.tensor(C), d=torch.tensor(d), method=method)
        direct = (lower > TOL).all(-1).tolist()
        if direct != proved:
            diff = [i for i, (a, b) in enumerate(zip(proved, direct)) if a != b]
            issue(f"{label} {method}: bounds_stage and spec_bounds on the margin rows certify "
                  f"different points: {diff}")
        for i, ok in enumerate(proved):
            exact = marabou_rows[i]["status"]["specrob"]
            falsified = any(r["index"] == i and r["verdict"] == "falsified"
                            for r in pipeline_rows)
            if ok and (exact == "sat" or falsified):
                issue(f"{label} {method}: point {i} certified, but Marabou answered {exact} "
                      f"and the pipeline {'falsified' if falsified else 'did not falsify'} it")
        res[method] = (sum(proved), best)
    return res


def print_c_row(eps, res, n, unsat, undecided):
    cells = "".join(f" {res[m][0] / n:>6.0%} {1000 * res[m][1]:>8.1f}ms" for m in METHODS)
    print(f"  {eps:>6g}{cells}   {unsat / n:>6.0%}"
          + (f" (+{undecided} undecided)" if undecided else ""))


# --- main --------------------------------------------------------------------------------

def export(module: nn.Module, n: int, path: Path):
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export")
    torch.onnx.export(module, (torch.rand(1, n),), str(path), input_names=["x"],
                      output_names=["logits"], dynamic_axes={"x": {0: "b"}, "logits": {0: "b"}},
                      dynamo=False)
    return load_onnx_checked(path)


def bench(name, model, data, epochs, points, eps_list, args, helper, workdir):
    torch_net = train_quickly(model, data, epochs)
    with torch.no_grad():
        acc = (torch_net(torch.tensor(data.x_test)).argmax(-1)
               == torch.tensor(data.y_test)).float().mean().item()
    onnx_path = workdir / f"{name}.onnx"
    net, module = export(torch_net, data.input_dim, onnx_path)
    linear = [m for m in torch_net.modules() if isinstance(m, nn.Linear)]
    weights = tuple(a.detach().double().numpy() for lin in linear for a in (lin.weight, lin.bias))
    helper.set_net(net, weights)
    sizes = "-".join(str(s) for s in [linear[0].in_features] + [lin.out_features for lin in
                                                                   linear])
    prop0 = specrob.load(CR_SPEC)["CR"]
    x0, y, _ = select_centres(prop0.centres, data, module, points)
    x0 = x0.double()
    with torch.no_grad():
        fx0 = module(x0.float()).double().numpy()
    print(f"{name}: {sizes} + clamp(-100, 100), {epochs} epoch(s) of plain Adam, test accuracy "
          f"{acc:.3f}; first {len(y)} test points ({int((fx0.argmax(-1) == y.numpy()).sum())} "
          f"correctly classified); Marabou timeout {args.timeout:g} s")
    solve_query(net, Encoder(prop0, data.input_dim, net.output_size).query(
        Centre(x0[0].numpy(), int(y[0]), fx0[0])), timeout=args.timeout)  # start the worker
    results = []
    for eps in eps_list:
        prop = specrob.load(CR_SPEC, eps=eps)["CR"]
        enc = Encoder(prop, data.input_dim, net.output_size)
        queries = [enc.query(Centre(x0[i].numpy(), int(y[i]), fx0[i])) for i in range(len(y))]
        label = f"{name} eps={eps:g}"
        a = part_a(helper, net, module, queries, y.tolist(), args.timeout, args.repeat, label)
        b, agree = part_b(prop, onnx_path, net, module, x0, y, args.timeout, label, a)
        c = part_c(net, queries, x0.numpy(), y.numpy(), eps, args.repeat, label, a,
                   b["auto"][1] + b["marabou"][1])
        results.append((eps, a, b, agree, c))
    print(" (a) Marabou per query, median ms; answers of specrob's solve_query "
          "(unsat/sat/other); ratio = specrob / direct (aim <= 1.2), and / direct's solve")
    print(f"  {'eps':>6} {'unsat':>5} {'sat':>4} {'t/o':>4} {'specrob':>8} {'in-proc':>8} "
          f"{'its-solve':>9} {'direct':>8} {'d-solve':>8} {'ratio':>7} {'/solve':>7}  same")
    for eps, a, *_ in results:
        print_a_row(eps, a)
    print(" (b) pipeline: decided before Marabou (attack, bounds, share); verdicts "
          "verified/falsified/unknown and run() time")
    print(f"  {'eps':>6} {'attack':>6} {'bounds':>6} {'share':>6}   {'auto':>13}   "
          f"{'marabou backend':>15} {'ratio':>7}   {'alone':>8}   agree")
    for eps, a, b, agree, _ in results:
        print_b_row(eps, b, agree, sum(r["time"]["specrob"] for r in a))
    print(" (c) bound propagation on every point: certified fraction, best time per batch; "
          "exact = Marabou unsat")
    print(f"  {'eps':>6}" + "".join(f" {m:>17}" for m in METHODS) + f"   {'exact':>6}")
    for eps, a, _, _, c in results:
        st = [r["status"]["specrob"] for r in a]
        print_c_row(eps, c, len(st), st.count("unsat"), len(st) - st.count("unsat")
                    - st.count("sat"))


def digits_net(data) -> nn.Module:
    """examples/digits_mlp.py (64 -> 32 ReLU -> 10) with its logits clamped to [-100, 100]."""
    return nn.Sequential(*build_model(ROOT / "examples" / "digits_mlp.py", data.input_dim,
                                      data.classes), Clamp(-100.0, 100.0))


def fashion_net(data) -> nn.Module:
    """The seed-003 network (examples/fashion_mnist_net.py), clamp included."""
    return build_model(ROOT / "examples" / "fashion_mnist_net.py", data.input_dim, data.classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=40, help="digits test points")
    ap.add_argument("--fashion-points", type=int, default=20)
    ap.add_argument("--eps", default="0.005,0.01,0.02", help="digits radii, comma-separated")
    ap.add_argument("--fashion-eps", default="0.002,0.005")
    ap.add_argument("--timeout", type=float, default=20.0, help="per Marabou query, seconds")
    ap.add_argument("--repeat", type=int, default=3, help="timings per fast query / batch")
    ap.add_argument("--epochs-digits", type=int, default=5)
    ap.add_argument("--epochs-fashion", type=int, default=1)
    ap.add_argument("--fashion", default="fashion-mnist",
                    help="dataset spec for load_data (e.g. fashion-mnist:DIR)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the ONNX networks here")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from importlib.metadata import version
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), maraboupy "
          f"{version('maraboupy')}")
    floats = lambda s: [float(v) for v in s.split(",") if v.strip()]
    cases = [("digits", digits_net, load_data("digits"), args.epochs_digits, args.points,
              floats(args.eps))]
    try:
        fashion = load_data(args.fashion)
        cases.append(("fashion-mnist", fashion_net, fashion, args.epochs_fashion,
                      args.fashion_points, floats(args.fashion_eps)))
    except DataError:
        print("note: Fashion-MNIST is absent (apt-get install dataset-fashion-mnist): "
              "digits only")
    workdir = Path(tempfile.mkdtemp(prefix="bench_verify_"))
    helper = Helper()
    start = time.perf_counter()
    try:
        for name, make, data, epochs, points, eps_list in cases:
            torch.manual_seed(0)  # the initial weights
            bench(name, make(data), data, epochs, points, eps_list, args, helper, workdir)
    finally:
        helper.stop()
        keep = args.keep
        if keep is None and ISSUES:
            keep = Path(tempfile.mkdtemp(prefix="bench_verify_keep_"))
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for f in workdir.glob("*.onnx"):
                shutil.copy(f, keep / f.name)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"total {time.perf_counter() - start:.0f} s")
    if ISSUES:
        print(f"{len(ISSUES)} cross-check(s) FAILED (networks kept in {keep}; points are "
              f"indices into the first test points):")
        for text in ISSUES:
            print(f"  - {text}")
    else:
        print("every cross-check passed: same Marabou answers on all sides, pipeline verdicts "
              "consistent with Marabou alone, bound certificates within Marabou's unsat set")


if __name__ == "__main__":
    main()
