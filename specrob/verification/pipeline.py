"""`specrob verify`: a sound verdict per centre — attack (falsify fast), bound propagation
(verify fast), Marabou for the rest.

Soundness rules (docs/design.md §4):
- `falsified` only with a counterexample that lies in ball ∩ domain and violates the property
  when the ONNX model is re-run with onnxruntime (ties under a non-strict comparison hold, so
  they are not counterexamples);
- `verified` only from bound propagation (every needed lower bound > tol) or a Marabou UNSAT
  (its query is the property's negation on a superset of the region: the region itself for
  l_inf and l_1, the enclosing box for l_2; strict comparisons are negated into non-strict
  ones, a superset again);
- everything else is `unknown`, with the reason.
Results stream to results.jsonl, one object per centre, so an interrupted run resumes.
"""
from __future__ import annotations

import copy

import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from specrob.lang import ir
from specrob.verification.config import VerifyConfig
from specrob.network.ir import Network
from specrob.network.oracle import Oracle
from specrob.logic.compiled import CompiledProperty
from specrob.search.attacks import block_seed
from specrob.numerics import generator
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder, Unsupported


BAB_SHARE = 0.6  # of a centre's --timeout for branch and bound; Marabou gets the rest

SEMANTICS = {
    "float32": "verified = holds for the network in exact arithmetic and for any float32 "
               "execution of it (sound float32 error margins); falsified = a counterexample "
               "violating the property on onnxruntime (float32) and in float64",
    "real": "verified = holds for the network in exact real arithmetic (as VNN-COMP tools "
            "read it; a float32 execution may differ); falsified = a counterexample violating "
            "the property on onnxruntime (float32) and in float64",
}


def confirm(compiled: CompiledProperty, oracle: Oracle, x: np.ndarray, x0: np.ndarray,
            y: np.ndarray, exact: torch.nn.Module | None = None) -> np.ndarray:
    """Per candidate: inside ball ∩ domain and violating the property on onnxruntime (the
    deployed float32 model) and, given `exact` (the network in float64, close to the
    real-valued semantics that bounds and Marabou reason about), there too. A "violation" that
    only float32 rounding creates is no counterexample: LR at a point one ulp from x0, where
    |f(x) - f(x0)| is rounding noise against L |x - x0| ~ 1e-8.

    Points are first rounded to float32, the precision the ONNX model reads, so that the
    property's x - x0 is the difference of the inputs the model really sees."""
    x = as_model_input(x)
    xt, x0t, yt = host(x, np.float64), host(x0, np.float64), host(y)
    inside = compiled.region.contains(xt, x0t, tol=0.0).numpy()
    fx, fx0 = host(oracle(x)), host(oracle(x0))
    violated = ~compiled.holds_at(xt, fx, x0t, fx0, yt).numpy()
    if exact is not None:
        with torch.no_grad():
            violated &= ~compiled.holds_at(xt, exact(xt), x0t, exact(x0t), yt).numpy()
    return inside & violated


def host(array, dtype=None) -> torch.Tensor:
    """A CPU tensor holding a copy of `array`: the checks of candidates (onnxruntime, float64)
    and the bookkeeping run on the CPU whatever --device is."""
    return torch.from_numpy(np.array(array, dtype=dtype))


def as_model_input(x: np.ndarray) -> np.ndarray:
    """x rounded to float32 (the model's input type), as float64."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def snap(x: np.ndarray, x0: np.ndarray, region) -> np.ndarray:
    """A candidate as a float32 input that lies exactly (no tolerance) in ball ∩ box: solvers
    and attacks return points on the boundary, and rounding to float32 may step outside.
    Coordinates are rounded inwards; for l_1 / l_2 balls the step from x0 is shrunk a little
    (1e-6, 1e-5, ... of itself) until the rounded point is inside."""
    x, x0 = np.asarray(x, dtype=np.float64), np.asarray(x0, dtype=np.float64)
    eps = np.asarray(region.radius(host(x0)).squeeze(-1).numpy())[:, None]
    low = np.maximum(x0 - eps, region.low)
    high = np.minimum(x0 + eps, region.high)
    out, pending = x.copy(), np.ones(len(x), dtype=bool)
    for shrink in (0.0, 1e-6, 1e-5, 1e-4, 1e-3):
        y = (x0 + (x - x0) * (1 - shrink)).astype(np.float32)
        above = y.astype(np.float64) > high
        y[above] = np.nextafter(y[above], np.float32(-np.inf))
        below = y.astype(np.float64) < low
        y[below] = np.nextafter(y[below], np.float32(np.inf))
        y = y.astype(np.float64)
        take = pending & region.contains(host(y), host(x0), tol=0.0).numpy()
        out[take] = y[take]
        pending &= ~take
        if not pending.any():
            break
    return out  # rows still pending stay outside and will not be confirmed


# --- bound propagation -------------------------------------------------------------------

def _proved(f: q.Formula, bounds: list[float], tol: float, cursor: list[int]) -> bool:
    """Is f proved, given lower bounds of its atoms' rows in `q.output_rows` order?"""
    if isinstance(f, q.Const):
        return f.value
    if isinstance(f, q.Atom):
        if f.is_linear_in_outputs() and f.op in ("<=", "<", ">=", ">"):
            value = bounds[cursor[0]]
            cursor[0] += 1
            return value > tol
        return False
    results = [_proved(i, bounds, tol, cursor) for i in f.items]  # consume every row
    return all(results) if isinstance(f, q.And) else any(results)


def region_arrays(queries: list[q.Query]):
    """The queries' domain bounds and radii for a batched bound pass: numbers when every
    query shares scalar bounds, else per-query, per-coordinate arrays (B, n); eps (B,).
    The queries must share p."""
    regions = [query.region for query in queries]
    if len({r.p for r in regions}) > 1:
        raise ValueError("a batched bound pass needs one p for all queries")
    eps = np.array([r.eps for r in regions], dtype=np.float64)
    if not any(r.is_box for r in regions) and len({(r.low, r.high) for r in regions}) == 1:
        return regions[0].low, regions[0].high, eps
    n = regions[0].centre.shape[0]
    low = np.stack([np.broadcast_to(np.asarray(r.low, np.float64), (n,)) for r in regions])
    high = np.stack([np.broadcast_to(np.asarray(r.high, np.float64), (n,)) for r in regions])
    return low, high, eps


def bounds_stage(net, queries: list[q.Query], method: str, tol: float,
                 device: torch.device | str = "cpu") -> list[bool]:
    """Which queries bound propagation proves (batched over the centres, on `device`)."""
    from specrob.bounds import spec_bounds
    rows = []
    for query in queries:
        rows.append(q.output_rows(query.body))
    k = max((len(r) for r in rows), default=0)
    if k == 0:
        return [_proved(query.body, [], tol, [0]) for query in queries]
    m = queries[0].classes
    C = np.zeros((len(queries), k, m))
    d = np.ones((len(queries), k))  # padding rows: trivially positive, never read
    for b, r in enumerate(rows):
        for i, (c, dd) in enumerate(r):
            C[b, i], d[b, i] = c, dd
    centres = np.stack([query.region.centre for query in queries])
    low, high, eps = region_arrays(queries)
    device = torch.device(device)
    lower = spec_bounds(net, torch.tensor(centres, device=device), eps, p=queries[0].region.p, low=low,
                        high=high, C=torch.tensor(C, device=device), d=torch.tensor(d, device=device),
                        method=method)
    lower = lower.detach().cpu().numpy()
    return [_proved(query.body, list(lower[b, :len(rows[b])]), tol, [0])
            for b, query in enumerate(queries)]


def _marabou_job(args):
    """One Marabou query in a worker process (single-threaded), with branch and bound's
    bounds over the same region when it ran."""
    net, query, timeout, known = args
    torch.set_num_threads(1)
    from specrob.verification.marabou import solve_query
    return solve_query(net, query, timeout=timeout, known_bounds=known)


def count_verdicts(rows: list[dict]) -> dict:
    """points, verified / falsified / unknown counts, constraint satisfaction (the verified
    fraction, with its 95% interval: Casadio et al. Def. 5), the falsified fraction, and the
    counts by verdict and method, of verify's rows."""
    from specrob.stats import proportion
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("verified", "falsified",
                                                                 "unknown")}
    by_method: dict[str, int] = {}
    for r in rows:
        key = f"{r['verdict']} by {r['method']}"
        by_method[key] = by_method.get(key, 0) + 1
    total = len(rows)
    return {"points": total, **counts,
            "constraint_satisfaction": proportion(counts["verified"], total).as_dict(),
            "falsified_fraction": proportion(counts["falsified"], total).as_dict(),
            "by_method": by_method}


# centres per block: the unit of random draws (`block_seed`: block 0 draws with the run's
# seed, as before blocks existed), shards and cluster tasks (`Verifier.run`)
BLOCK = 256


class Verifier:
    """Runs the pipeline over the centres of one property."""

    def __init__(self, prop: ir.Property, onnx_path: str | Path, net: Network,
                 module: torch.nn.Module, x0: torch.Tensor, y: torch.Tensor, config: VerifyConfig,
                 out: Path | None = None, progress: Callable[[int], None] | None = None,
                 index: list[int] | None = None):
        self.prop, self.net, self.module, self.config = prop, net, module, config
        # where attacks, CROWN and branch and bound run (--device); the counterexamples'
        # checks (onnxruntime, float64) and Marabou stay on the CPU
        self.device = torch.device(config.device)
        # each centre's index in the user's data (the rows' "index"); default 0, 1, ...
        self.index = list(range(len(y))) if index is None else [int(i) for i in index]
        self.position = {k: i for i, k in enumerate(self.index)}
        self.exact = copy.deepcopy(module).double().eval()  # float64: the second check of confirm
        self.x0, self.y = x0.double(), y
        self.oracle = Oracle(onnx_path)
        self.compiled = CompiledProperty(prop, x0.shape[-1])
        self.out, self.onnx_path = out, Path(onnx_path)
        self.folder = None
        self.lines = None
        self.progress: Callable[[int], object] = progress or (lambda k: None)
        self.done: dict[int, dict] = {}
        self.stage_seconds = {"attack": 0.0, "bounds": 0.0, "bab": 0.0, "marabou": 0.0}
        self.float32_error_max = 0.0
        self.spent: dict[int, float] = {}  # per centre: seconds of branch and bound
        self.bab_reasons: dict[int, str] = {}
        self.bab_known: dict[int, tuple] = {}  # centre -> (bounds, the region they hold on)
        # a final Softmax / LogSoftmax: stripped where the property does not see it
        from specrob.search.attacks import attack_model
        from specrob.network.final_layer import final_monotone
        self.final = final_monotone(net)
        self.attack_module, self.attack_note = attack_model(prop, module)
        self.nets: dict[int, Network] = {}  # per centre: the network its query is checked on
        self.seed = config.seed  # the seed of the block being verified (`block_seed`)

    # --- results on disk -------------------------------------------------------------------
    @property
    def results_path(self) -> Path | None:
        return None if self.out is None else self.out / "results.jsonl"

    def identity(self) -> dict:
        """Everything that determines the verdicts: the model file, the centres and labels,
        the property after --set, the options (not the number of workers) and the seed."""
        from specrob.lang import printer
        from specrob.runfolder import file_identity
        options = self.config.verdict_options()
        options.pop("points")  # more or fewer centres: each row carries its centre's hash
        return {"model": file_identity(self.onnx_path),
                "property": printer.declaration(self.prop), "options": options}

    def centre_hash(self, i: int) -> str:
        """A short hash of centre i (its float32 input and its label): a resumed row must
        belong to the same centre, not only to the same index."""
        from specrob.runfolder import array_identity
        return array_identity(self.x0[i].float(), self.y[i:i + 1])[:16]

    def resume(self, fresh: bool = False) -> int:
        """Open the run folder (bound to `identity()`, locked against a second writer) and read
        the finished centres of results.jsonl; return how many. Raises RunFolderError when the
        folder holds another run's results (unless `fresh`), is in use, or is not writable."""
        if self.out is None:
            return 0
        from specrob.runfolder import JsonLines, RunFolder
        self.folder = RunFolder(self.out, "verify", self.identity(),
                                files=("results.jsonl", "summary.json", "verify.json",
                                       "counterexamples.png"),
                                fresh=fresh)
        self.folder.open()
        path = self.results_path
        assert path is not None  # self.out is set
        self.lines = JsonLines(path)
        if self.folder.resumed:
            from specrob.runfolder import RunFolderError
            for row in self.lines.rows():
                index = row.get("index")
                i = self.position.get(index) if isinstance(index, int) else None
                if i is None:
                    continue  # a centre beyond --points: kept in the file, not counted
                if row.get("centre") != self.centre_hash(i):
                    raise RunFolderError(
                        f"{self.results_path}: the row of centre {self.index[i]} was computed for another "
                        f"point or label (other --data or centres); use --fresh to start "
                        f"over, or choose another --out")
                self.done[i] = row
            self._carry_over_summary()
        else:
            self.lines.clear()
        return len(self.done)

    def _carry_over_summary(self) -> None:
        """A resumed run keeps what the earlier runs measured: their seconds per stage and
        their largest float32 error bound (summary.json is rewritten at the end)."""
        from specrob.runfolder import RunFolderError, read_json
        assert self.out is not None  # called by resume, after its check
        path = self.out / "summary.json"
        if not path.exists():
            return
        try:
            old = read_json(path)
        except RunFolderError:
            return  # a cut summary: it is rewritten whole at the end
        for stage, seconds in (old.get("stage_seconds") or {}).items():
            if isinstance(seconds, (int, float)):
                self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        previous = old.get("float32_error_max")
        if isinstance(previous, (int, float)):
            self.float32_error_max = max(self.float32_error_max, float(previous))

    def close(self) -> None:
        """Release the run folder (its lock)."""
        if self.folder is not None:
            self.folder.close()

    def record(self, row: dict) -> None:
        i = self.position[row["index"]]
        if i in self.done:  # never two rows for one centre
            return
        self.done[i] = row
        if self.lines is not None:
            self.lines.append(row)
        self.progress(1)

    def write_summary(self, extra: dict | None = None) -> dict:
        """summary.json (atomically): `extra` (model, centres) and `summary()`."""
        summary = {**(extra or {}), **self.summary()}
        if self.out is not None:
            from specrob.runfolder import write_json
            write_json(self.out / "summary.json", summary)
        return summary

    # --- the pipeline ----------------------------------------------------------------------
    @property
    def blocks(self) -> int:
        """The number of blocks of BLOCK centres (by position)."""
        return -(-len(self.y) // BLOCK)

    def block(self, k: int) -> range:
        """The positions of block k."""
        return range(k * BLOCK, min((k + 1) * BLOCK, len(self.y)))

    def run(self, blocks: Iterable[int] | None = None,
            skip: frozenset[int] = frozenset()) -> list[dict]:
        """Verify the centres not yet done (nor in `skip`), block by block (default: every
        block; a shard or a cluster worker runs some). A block's random draws come from
        `block_seed(seed, k)` and its own centres, so any split of the blocks gives the
        verdicts of one run. Returns the rows of every finished centre, by position."""
        for k in (range(self.blocks) if blocks is None else blocks):
            self.seed = block_seed(self.config.seed, k)
            self.run_block([i for i in self.block(k) if i not in self.done and i not in skip])
        return [self.done[i] for i in sorted(self.done)]

    def run_block(self, todo: list[int]) -> None:
        if todo and self.compiled.region.eps == 0:
            self.point_stage(todo)
            return
        queries, unsupported = self.encode(todo)
        if todo:
            self.attack_stage(todo, queries)
        todo = [i for i in todo if i not in self.done]
        for i in todo:
            if i in unsupported:
                self.record(self.row(i, "unknown", "encode", 0.0,
                                     reason=f"unsupported: {unsupported[i]}"))
        todo = [i for i in todo if i in queries]
        self.choose_networks(todo, queries)
        if todo and self.config.semantics == "float32":
            todo = self.float32_margins(todo, queries)
        if todo and self.config.backend in ("auto", "bounds"):
            todo = self.bound_stage(todo, queries)
        if todo and self.config.backend in ("auto", "bab"):
            todo = self.bab_stage(todo, queries)
        if todo and self.config.backend in ("auto", "marabou"):
            self.marabou_stage(todo, queries)
        elif todo:
            for i in todo:
                self.record(self.row(i, "unknown", self.config.backend, 0.0, reason=(
                    f"{self.config.backend} inconclusive (--backend {self.config.backend})")))

    def encode(self, todo: list[int]) -> tuple[dict[int, q.Query], dict[int, str]]:
        """Per centre its query (the property with the centre's data substituted), or why it
        cannot be encoded."""
        queries: dict[int, q.Query] = {}
        unsupported: dict[int, str] = {}
        fx0 = self.oracle(self.x0[todo].numpy()) if todo else None
        encoder = Encoder(self.prop, self.x0.shape[-1], self.net.output_size)
        for k, i in enumerate(todo):
            assert fx0 is not None  # todo is not empty
            try:
                queries[i] = encoder.query(Centre(self.x0[i].numpy(), int(self.y[i]), fx0[k]))
            except Unsupported as exc:
                unsupported[i] = str(exc)
        return queries, unsupported

    def choose_networks(self, todo: list[int], queries: dict[int, q.Query]) -> None:
        """Per centre, the network bounds and Marabou check its query on: without the final
        Softmax / LogSoftmax when the query compares outputs order-wise only."""
        from specrob.lang.query import query_order_only
        final = self.final
        for i in todo:
            if final is not None and query_order_only(queries[i].body, final.kind):
                self.nets[i] = final.logits
            else:
                self.nets[i] = self.net

    def final_layer_note(self, i: int, verdict: str, method: str) -> dict:
        """The row's note (or the unknown's reason) about a final Softmax / LogSoftmax."""
        if self.final is None and self.attack_note is None:
            return {}
        if method == "attack":
            return {"note": self.attack_note} if self.attack_note else {}
        if self.final is None or i not in self.nets:
            return {}
        if self.nets[i] is not self.net:
            return {"note": self.final.stripped_note(self.prop.name)}
        return {"reason": self.final.kept_reason()} if verdict == "unknown" else {}

    def row(self, i: int, verdict: str, method: str, seconds: float, **extra) -> dict:
        for key, text in self.final_layer_note(i, verdict, method).items():
            extra[key] = "; ".join(t for t in (extra.get(key), text) if t)
        if extra.get("counterexample") is not None:  # what a user checks first
            x = np.asarray(extra["counterexample"], dtype=np.float64)
            logits = self.oracle(x[None])[0]
            step = x - self.x0[i].numpy()
            extra["predicted"] = int(np.argmax(logits))
            extra["logits"] = [float(v) for v in logits]
            extra["distance"] = {"linf": float(np.abs(step).max(initial=0.0)),
                                 "l2": float(np.sqrt((step ** 2).sum())),
                                 "l1": float(np.abs(step).sum())}
        return {"index": self.index[i], "label": int(self.y[i]), "verdict": verdict,
                "method": method, "seconds": round(seconds, 6), **extra,
                "centre": self.centre_hash(i)}

    def point_stage(self, todo: list[int]) -> None:
        """eps = 0: the region is the centre alone, so the property is decided by evaluating it
        there, on onnxruntime (the deployed model) and in float64 (exact arithmetic, close
        enough at one point: both must agree, else unknown)."""
        start = time.perf_counter()
        x0 = self.x0[todo].numpy()
        y = self.y[todo]
        xt = host(as_model_input(x0), np.float64)
        deployed = host(self.oracle(xt.numpy()))
        with torch.no_grad():
            holds_deployed = self.compiled.holds_at(xt, deployed, xt, deployed, y).numpy()
            exact = self.exact(xt)
            holds_exact = self.compiled.holds_at(xt, exact, xt, exact, y).numpy()
        seconds = (time.perf_counter() - start) / len(todo)
        for k, i in enumerate(todo):
            if holds_deployed[k] and holds_exact[k]:
                self.record(self.row(i, "verified", "point", seconds,
                                     note="eps = 0: the property evaluated at x0"))
            elif not holds_deployed[k] and not holds_exact[k]:
                self.record(self.row(i, "falsified", "point", seconds,
                                     counterexample=as_model_input(x0[k]).tolist()))
            else:
                self.record(self.row(i, "unknown", "point", seconds, reason=(
                    "eps = 0: the property holds at x0 in "
                    + ("float32 (onnxruntime) but not in float64" if holds_deployed[k] else
                       "float64 but not in float32 (onnxruntime)") + ": a tie within rounding")))

    def tie_search(self, i: int, x: np.ndarray, samples: int = 64) -> np.ndarray | None:
        """A solver's point that does not violate the property on the model is often a tie
        (the boundary of the violated set). Search its neighbourhood, at radii 1e-6 to 1e-2 of
        eps, for a confirmed violation; return it or None."""
        eps = float(self.compiled.region.radius(self.x0[i:i + 1]).reshape(-1)[0])
        gen = np.random.default_rng(self.config.seed + i)
        x0 = self.x0[i:i + 1].numpy()
        for scale in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2):
            step = gen.uniform(-1.0, 1.0, (samples, x.shape[-1])) * scale * max(eps, 1e-12)
            cands = snap(x[None, :] + step, np.repeat(x0, samples, 0), self.compiled.region)
            ok = confirm(self.compiled, self.oracle, cands, np.repeat(x0, samples, 0),
                         np.repeat(self.y[i:i + 1].numpy(), samples), self.exact)
            if ok.any():
                return cands[int(np.argmax(ok))]
        return None

    def attack_stage(self, todo: list[int], queries: dict[int, q.Query] | None = None) -> None:
        """Falsify what attacks can: the margin attack on the centres' queries (see
        `VerifyConfig.attack`), then PGD and FGSM on the property (`default_attacks`) for the
        centres still open. Every candidate is snapped into ball ∩ domain and confirmed."""
        from specrob.search.attacks import attack_once, default_attacks
        start = time.perf_counter()
        module = self.module.float().eval().to(self.device)
        logits = None if self.attack_module is None else \
            self.attack_module.float().eval().to(self.device)
        found: dict[int, np.ndarray] = {}
        if self.config.attack == "margin" and queries:
            found.update(self.margin_attack(todo, queries,
                                           logits if logits is not None else module))
        rest = [i for i in todo if i not in found]
        if rest:
            idx = torch.tensor(rest, device="cpu")
            x0, y = self.x0[idx].float().to(self.device), self.y[idx].to(self.device)
            torch.manual_seed(self.seed)
            violated, _, points = attack_once(
                self.compiled, module, x0, y,
                default_attacks(self.config.steps, self.config.restarts),
                generator(self.seed, self.device), search_model=logits)
            candidates = violated.nonzero().flatten().tolist()
            y = y.cpu()
            if candidates:
                cx = snap(points[candidates].double().cpu().numpy(),
                          self.x0[idx[candidates]].numpy(), self.compiled.region)
                real = confirm(self.compiled, self.oracle, cx,
                               self.x0[idx[candidates]].numpy(), y[candidates].numpy(),
                               self.exact)
                for j, (k, ok) in enumerate(zip(candidates, real)):
                    if ok:
                        found[rest[k]] = cx[j]
        seconds = (time.perf_counter() - start) / max(len(todo), 1)
        self.stage_seconds["attack"] += time.perf_counter() - start
        for i in todo:
            if i in found:
                self.record(self.row(i, "falsified", "attack", seconds,
                                     counterexample=found[i].tolist()))

    def margin_attack(self, todo: list[int], queries: dict[int, q.Query],
                      module: torch.nn.Module) -> dict[int, np.ndarray]:
        """`attack_queries` on the queries of l_inf balls (whose box is the region), with a
        restart per disjunct of the violation (at least `restarts`); per centre the first
        confirmed counterexample among the restarts' best points (best first)."""
        from specrob.search.query_attack import attack_queries
        box = [i for i in todo if i in queries and math.isinf(queries[i].region.p)]
        if not box:
            return {}
        restarts = max(self.config.restarts, queries[box[0]].classes)
        points, values = attack_queries(module, [queries[i] for i in box], restarts=restarts,
                                        steps=self.config.margin_steps, seed=self.seed,
                                        device=self.device)
        rows, cands = [], []
        for k, i in enumerate(box):
            keep = values[k] >= -1e-6
            rows += [k] * int(keep.sum())
            cands.append(points[k][keep])
        if not rows:
            return {}
        rows_a = np.array(rows)
        centres = np.stack([self.x0[box[k]].numpy() for k in rows])
        cx = snap(np.concatenate(cands), centres, self.compiled.region)
        ok = confirm(self.compiled, self.oracle, cx, centres,
                     np.array([int(self.y[box[k]]) for k in rows]), self.exact)
        found: dict[int, np.ndarray] = {}
        for j in np.flatnonzero(ok):
            found.setdefault(box[int(rows_a[j])], cx[j])
        return found

    def float32_margins(self, todo: list[int], queries: dict[int, q.Query]) -> list[int]:
        """Strengthen each query by a sound bound on the float32 execution error of the
        outputs of the network it is checked on, over its region (`floaterror.float32_error`),
        so that a proof holds for the deployed float32 model too. Points without such a bound
        are left unknown."""
        return self.per_network(todo, queries, self.float32_group)

    def float32_group(self, todo: list[int], queries: dict[int, q.Query]) -> list[int]:
        from specrob.verification.floaterror import float32_error
        start = time.perf_counter()
        net = self.nets.get(todo[0], self.net)
        reg = queries[todo[0]].region
        centres = np.stack([queries[i].region.centre for i in todo])
        try:
            error = float32_error(net, host(centres), reg.eps, p=reg.p,
                                  low=reg.low, high=reg.high).numpy()
        except NotImplementedError as exc:
            for i in todo:
                self.record(self.row(i, "unknown", "float32", 0.0, reason=(
                    f"{exc}: the float32 semantics cannot be checked; --semantics real "
                    f"verifies the exact-arithmetic network")))
            return []
        for k, i in enumerate(todo):
            query = queries[i]
            queries[i] = q.Query(q.strengthen(query.body, error[k]), query.region,
                                 query.classes, query.sufficient, query.note)
        self.float32_error_max = max(self.float32_error_max, float(error.max(initial=0.0)))
        self.stage_seconds["bounds"] += time.perf_counter() - start
        return todo

    def per_network(self, todo: list[int], queries: dict[int, q.Query], stage) -> list[int]:
        """Run `stage(centres, queries)` once per network the centres are checked on (the
        model, or the model without its final softmax); returns the centres left open."""
        groups = [[i for i in todo if self.nets.get(i, self.net) is net]
                  for net in (self.net, getattr(self.final, "logits", None))]
        return sorted(i for group in groups if group for i in stage(group, queries))

    def bound_stage(self, todo: list[int], queries: dict[int, q.Query]) -> list[int]:
        return self.per_network(todo, queries, self.bound_group)

    def bound_group(self, todo: list[int], queries: dict[int, q.Query]) -> list[int]:
        from specrob.bounds import unsupported
        start = time.perf_counter()
        method = self.config.bounds
        net = self.nets.get(todo[0], self.net)
        if any(r.startswith("Softmax") for r in unsupported(net, method)):
            method = "ibp"  # CROWN refuses a softmax node; intervals still bound it
        try:
            proved = bounds_stage(net, [queries[i] for i in todo], method,
                                  self.config.tol, self.device)
        except NotImplementedError:
            self.stage_seconds["bounds"] += time.perf_counter() - start
            return todo
        seconds = (time.perf_counter() - start) / max(len(todo), 1)
        self.stage_seconds["bounds"] += time.perf_counter() - start
        rest = []
        for i, ok in zip(todo, proved):
            if ok:
                self.record(self.row(i, "verified", method, seconds))
            else:
                rest.append(i)
        return rest

    def split_lipschitz(self, i: int, query: q.Query) -> q.Query:
        """For `norm(F(x) - F(x0), q) <= L * norm(x - x0, p)`: prove the box of radius gamma
        around x0 where the network is affine (`local.py`), and leave Marabou the rest of the
        ball, so that the tie at x = x0 is no longer an answer."""
        from specrob.lang.walk import lipschitz_shape
        from specrob.lang.params import resolve_params
        from specrob.verification import local
        shape, body = lipschitz_shape(self.prop), self.prop.body
        # a shape means a Compare with a Norm on the left
        if shape is None or not isinstance(body, ir.Compare) or not isinstance(body.left, ir.Norm) \
                or body.left.vector != ir.Arith("-", ir.Net(False), ir.Net(True)):
            return query
        L = resolve_params(self.prop, self.x0.shape[-1])[shape[0]]
        x0 = query.region.centre
        gamma = local.stable_radius(self.net, x0, query.region.low, query.region.high,
                                    max(query.region.eps, 1e-12))
        if gamma is None:
            return query
        bound = local.operator_norm_bound(local.jacobian(self.net, x0), shape[1], body.left.p)
        if bound > L:
            return query
        n, m = x0.shape[0], query.classes
        near = q.Atom(q.Affine(np.zeros((1, m)), np.zeros((1, n)), np.array([-gamma])),
                      (q.NormTerm(1.0, q.Affine(np.zeros((n, m)), np.eye(n), -x0), math.inf),),
                      "<")
        return q.Query(q.Or((query.body, near)), query.region, m, query.sufficient,
                       f"proved on the l_inf box of radius {gamma:.3g} around x0 (affine there, "
                       f"||J|| <= {bound:.3g} <= L); Marabou on the rest")

    def bab_stage(self, todo: list[int], queries: dict[int, q.Query]) -> list[int]:
        """Branch and bound (`bab.py`) on each centre bound propagation left open, with
        BAB_SHARE of the centre's --timeout (all of it for --backend bab); Marabou gets what is
        left. Returns the centres still open."""
        from specrob.verification.bab import branch_and_bound
        share = 1.0 if self.config.backend == "bab" else BAB_SHARE
        rest = []
        for i in todo:
            start = time.perf_counter()
            net = self.nets.get(i, self.net)
            (result,) = branch_and_bound(net, [queries[i]], timeout=share * self.config.timeout,
                                         method=self.config.bab_bounds, seed=self.config.seed,
                                         device=self.config.device)
            seconds = time.perf_counter() - start
            self.stage_seconds["bab"] = self.stage_seconds.get("bab", 0.0) + seconds
            self.spent[i] = self.spent.get(i, 0.0) + seconds
            if result.status == "verified":
                self.record(self.row(i, "verified", "bab", seconds,
                                     note=f"branch and bound: {result.domains} subdomains"))
                continue
            if result.status == "falsified" and result.counterexample is not None:
                x = snap(result.counterexample[None, :], self.x0[i:i + 1].numpy(),
                         self.compiled.region)
                if confirm(self.compiled, self.oracle, x, self.x0[i:i + 1].numpy(),
                           self.y[i:i + 1].numpy(), self.exact)[0]:
                    self.record(self.row(i, "falsified", "bab", seconds,
                                         counterexample=x[0].tolist()))
                    continue
            self.bab_reasons[i] = result.reason
            if result.bounds is not None:
                self.bab_known[i] = (result.bounds, queries[i].region)
            rest.append(i)
        return rest

    def known_bounds(self, i: int, query: q.Query) -> dict | None:
        """Branch and bound's bounds for centre i when Marabou's query has the region they
        were computed on (else None: bounds of another region are not known to hold)."""
        bounds, region = self.bab_known.get(i, (None, None))
        if bounds is None or region is None:
            return None
        same = (region.p == query.region.p and region.eps == query.region.eps
                and np.array_equal(region.centre, query.region.centre)
                and np.array_equal(np.broadcast_to(region.low, region.centre.shape),
                                   np.broadcast_to(query.region.low, region.centre.shape))
                and np.array_equal(np.broadcast_to(region.high, region.centre.shape),
                                   np.broadcast_to(query.region.high, region.centre.shape)))
        return bounds if same else None

    def marabou_stage(self, todo: list[int], queries: dict[int, q.Query]) -> None:
        start = time.perf_counter()
        if self.config.semantics == "real":  # the affine box near x0 is an exact-real proof
            queries = {i: self.split_lipschitz(i, queries[i]) for i in todo}
        left = {i: max(1.0, self.config.timeout - self.spent.get(i, 0.0)) for i in todo}
        jobs = [(self.nets.get(i, self.net), queries[i], left[i], self.known_bounds(i, queries[i]))
                for i in todo]
        if self.config.workers > 1:
            import multiprocessing
            from concurrent.futures import as_completed
            from concurrent.futures.process import BrokenProcessPool
            lost = []
            with ProcessPoolExecutor(self.config.workers,
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(_marabou_job, job): i for i, job in zip(todo, jobs)}
                for future in as_completed(futures):
                    i = futures[future]
                    try:
                        result = future.result()
                    except BrokenProcessPool:  # a worker died (killed, out of memory)
                        lost.append(i)
                        continue
                    self.marabou_verdict(i, queries[i], result)
            for i in sorted(lost):  # run here what a dead worker took with it
                self.marabou_verdict(i, queries[i], _marabou_job(jobs[todo.index(i)]))
        else:
            for i, job in zip(todo, jobs):
                self.marabou_verdict(i, queries[i], _marabou_job(job))
        self.stage_seconds["marabou"] += time.perf_counter() - start

    def marabou_verdict(self, i: int, query: q.Query, result, retried: bool = False) -> None:
        if result.status == "unsat":
            note = "; ".join(n for n in (query.note, result.message) if n)
            self.record(self.row(i, "verified", "marabou", result.seconds, note=note or None))
            return
        if result.status == "sat" and result.counterexample is not None:
            x = snap(np.asarray(result.counterexample, dtype=np.float64)[None, :],
                     self.x0[i:i + 1].numpy(), self.compiled.region)
            real = confirm(self.compiled, self.oracle, x, self.x0[i:i + 1].numpy(),
                           self.y[i:i + 1].numpy(), self.exact)[0]
            if real:
                self.record(self.row(i, "falsified", "marabou", result.seconds,
                                     counterexample=x[0].tolist()))
                return
            inside = bool(self.compiled.region.contains(host(x),
                                                        self.x0[i:i + 1], tol=0.0)[0])
            if inside and not retried:
                found = self.tie_search(i, x[0])
                if found is not None:
                    self.record(self.row(i, "falsified", "marabou+local", result.seconds,
                                         counterexample=found.tolist(),
                                         note="found near Marabou's tie point"))
                    return
                # ask again for a violation by more than the float32 resolution of the values
                outputs = np.abs(np.asarray(result.outputs if result.outputs is not None
                                            else [1.0]))
                # the float32 resolution of the compared values, but at least Marabou's
                # own feasibility tolerance (about 1e-5), below which it cannot tell
                delta = max(4 * 2.0 ** -23 * max(1.0, float(outputs.max(initial=1.0))), 2e-5)
                again = q.Query(q.relax(query.body, delta), query.region, query.classes,
                                query.sufficient, query.note)
                from specrob.verification.marabou import solve_query
                second = solve_query(self.net, again, timeout=self.config.timeout)
                if second.status == "sat":
                    self.marabou_verdict(i, again, second, retried=True)
                    return
                if second.status == "unsat":
                    self.record(self.row(i, "unknown", "marabou", result.seconds + second.seconds,
                                         reason=f"a tie: the property's bound is attained at "
                                                f"Marabou's point, and no violation by more than "
                                                f"{delta:.2g} (the float32 resolution of the "
                                                f"compared values, at least Marabou's tolerance) "
                                                f"exists"))
                    return
            deployed = bool(confirm(self.compiled, self.oracle, x, self.x0[i:i + 1].numpy(),
                                    self.y[i:i + 1].numpy())[0])
            why = ("Marabou's point lies outside the ball (for l_2 it searched the enclosing "
                   "box)" if not inside else
                   "the deployed float32 model (onnxruntime) violates the property at Marabou's "
                   "point, the network in exact arithmetic does not: a float32 rounding "
                   "effect" if deployed else
                   "Marabou's point satisfies the property on onnxruntime (a tie, rounding, a "
                   "float32 error margin, or a sufficient condition that is stronger than the "
                   "property)")
            self.record(self.row(i, "unknown", "marabou", result.seconds,
                                 reason=f"counterexample not confirmed: {why}"))
            return
        reason = {"timeout": f"Marabou timed out after {result.seconds:.3g} s"}.get(
            result.status, f"Marabou: {result.status} {result.message}".strip())
        if i in self.bab_reasons:
            reason = f"{self.bab_reasons[i]}; {reason}"
        self.record(self.row(i, "unknown", "marabou", result.seconds, reason=reason))

    def summary(self) -> dict:
        return {"property": self.prop.name, **count_verdicts(list(self.done.values())),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "semantics": SEMANTICS[self.config.semantics],
                "float32_error_max": self.float32_error_max,
                "eps": self.compiled.region.eps, "norm": "inf" if math.isinf(
                    self.compiled.region.p) else int(self.compiled.region.p)}
