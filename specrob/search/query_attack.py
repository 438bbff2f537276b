"""A PGD attack on verification queries (`specrob.lang.query.Query`): points of each query's
input box where the body (the property) is violated, found by projected sign-gradient ascent
on a violation margin, batched over queries and random restarts.

The margin: an atom `v op 0` has the truth margin v for > / >=, -v for < / <=, -|v| for ==,
|v| for != (the atom holds when it is positive, or zero for the non-strict ones); And takes the
min, Or the max. The body is violated where its margin is <= 0. The search maximises the
margin of the violation: the negated body in disjunctive normal form, one disjunct (a
conjunction: min over its atoms) per restart in turn, so that every target class gets its own
restarts, plus the max over all disjuncts.

Restarts other than the first begin with output-diversified initialisation (ODI, Tashiro et
al. 2020): a few steps up a random direction of the output space, so that restarts do not all
climb to the same local optimum (on VNN-COMP 2021 mnistfc, 100 restarts with ODI find three
counterexamples that 1000 uniform restarts miss). Steps follow an APGD-like schedule (Croce & Hein 2020): the step starts at a quarter of each
coordinate's box width and is halved, the search restarted from the best point, whenever a
checkpoint shows no progress. Every point returned lies in the box; callers re-check them on
the model (this is a search, never a verdict).
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from specrob.lang import query as q
from specrob.numerics import generator

__all__ = ["attack_queries", "truth_margin"]


def _atom_value(a: q.Atom, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """lin + norms at a batch: z (K, m), x (K, n) -> (K,)."""
    dt, dev = z.dtype, z.device
    v = z @ torch.as_tensor(a.lin.out[0], dtype=dt, device=dev) + x @ torch.as_tensor(a.lin.inp[0], dtype=dt, device=dev) \
        + float(a.lin.const[0])
    for t in a.norms:
        vec = z @ torch.as_tensor(t.vec.out.T, dtype=dt, device=dev) + x @ torch.as_tensor(t.vec.inp.T, dtype=dt, device=dev) \
            + torch.as_tensor(t.vec.const, dtype=dt, device=dev)
        norm = vec.abs().amax(-1) if t.p == math.inf else vec.abs().sum(-1)
        v = v + t.weight * norm
    return v


def truth_margin(f: q.Formula, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """How far the formula is from failing, per row (K,): > 0 where it holds robustly."""
    if isinstance(f, q.Const):
        return torch.full((z.shape[0],), math.inf if f.value else -math.inf, dtype=z.dtype,
                          device=z.device)
    if isinstance(f, q.Atom):
        v = _atom_value(f, z, x)
        return {">": v, ">=": v, "<": -v, "<=": -v, "==": -v.abs(), "!=": v.abs()}[f.op]
    parts = torch.stack([truth_margin(i, z, x) for i in f.items])
    return parts.amin(0) if isinstance(f, q.And) else parts.amax(0)


def _dnf(f: q.Formula, limit: int = 64) -> list[q.Formula]:
    """Disjuncts of f (a formula each); f itself as one when the expansion is too large."""
    if isinstance(f, q.Or):
        out = [d for item in f.items for d in _dnf(item, limit)]
        return out if len(out) <= limit else [f]
    if isinstance(f, q.And):
        conjunctions: list[list[q.Formula]] = [[]]
        for item in f.items:
            conjunctions = [a + [b] for a in conjunctions for b in _dnf(item, limit)]
            if len(conjunctions) > limit:
                return [f]
        return [q.And(tuple(c)) for c in conjunctions]
    return [f]


def _linear_dnf(f: q.Formula, limit: int = 64):
    """f as a max over disjuncts of a min over linear atoms: (out (D, A, m), inp (D, A, n),
    const (D, A)) signed so that each atom's truth margin is out @ z + inp @ x + const, padded
    (atoms with const +inf, disjuncts with const -inf); None when f has a norm, == or !=, or
    its expansion is too large. Then the margin is exactly `truth_margin(f)`, batched."""
    disjuncts = []
    for d in _dnf(f, limit):
        atoms = d.items if isinstance(d, q.And) else (d,)
        rows = []
        for a in atoms:
            if isinstance(a, q.Const):
                rows.append(None if a.value else "false")
                continue
            if not isinstance(a, q.Atom) or a.norms or a.op not in (">", ">=", "<", "<="):
                return None
            sign = 1.0 if a.op in (">", ">=") else -1.0
            rows.append((sign * a.lin.out[0], sign * a.lin.inp[0], sign * float(a.lin.const[0])))
        if "false" in rows:
            continue  # a disjunct that can never hold adds nothing to the max
        disjuncts.append([r for r in rows if r is not None])
    if not disjuncts:
        return None
    D, A = len(disjuncts), max(1, max(len(d) for d in disjuncts))
    m = next((r[0].shape[0] for d in disjuncts for r in d), None)
    n = next((r[1].shape[0] for d in disjuncts for r in d), None)
    if m is None or n is None:  # both or neither
        return None  # only constants: the general path handles them
    out, inp = np.zeros((D, A, m)), np.zeros((D, A, n))
    const = np.full((D, A), math.inf)
    for i, d in enumerate(disjuncts):
        if not d:  # an empty conjunction holds: margin +inf
            continue
        for j, (o, x, c) in enumerate(d):
            out[i, j], inp[i, j], const[i, j] = o, x, c
    return out, inp, const


def _batched_margins(targets: list[list[q.Formula]], dtype: torch.dtype,
                     device: torch.device | str = "cpu"):
    """A function of (z (K, m), x (K, n)) -> margins (K,) for the targets of every row
    (K = Q*R, row k*R + r is target r of query k), when all are linear DNFs; else None."""
    linear = [_linear_dnf(t) for ts in targets for t in ts]
    forms = [f for f in linear if f is not None]
    if len(forms) < len(linear):
        return None
    D = max(f[0].shape[0] for f in forms)
    A = max(f[0].shape[1] for f in forms)
    m, n = forms[0][0].shape[2], forms[0][1].shape[2]
    if any(f[0].shape[2] != m or f[1].shape[2] != n for f in forms):
        return None
    K = len(forms)
    out, inp = np.zeros((K, D, A, m)), np.zeros((K, D, A, n))
    const = np.full((K, D, A), -math.inf)  # padded disjuncts: never the max
    for k, (o, x, c) in enumerate(forms):
        d, a = o.shape[:2]
        out[k, :d, :a], inp[k, :d, :a] = o, x
        const[k, :d] = math.inf  # padded atoms of a real disjunct: never the min
        const[k, :d, :a] = c
    out_t, const_t = torch.tensor(out, dtype=dtype, device=device), torch.tensor(const, dtype=dtype, device=device)
    inp_t = torch.tensor(inp, dtype=dtype, device=device) if np.any(inp != 0) else None

    def margins(z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        v = torch.einsum("kdam,km->kda", out_t, z) + const_t
        if inp_t is not None:
            v = v + torch.einsum("kdan,kn->kda", inp_t, x)
        return v.amin(-1).amax(-1)

    return margins


def attack_queries(module: torch.nn.Module, queries: list[q.Query], *, restarts: int = 10,
                   steps: int = 100, seed: int = 0, deadline: float | None = None,
                   dtype: torch.dtype = torch.float32, odi_steps: int = 10,
                   device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Per query, the best point of each restart and its violation margin (>= 0: violated on
    `module` in `dtype`): arrays (Q, R, n) and (Q, R), restarts sorted best first. Points lie
    in the query's box (`region.box_low/box_high`; an l_p ball is searched through its box
    only when p = inf). `deadline` (time.perf_counter()) stops early. `odi_steps`: steps of
    output-diversified initialisation before the margin steps (0: uniform random starts only;
    a-b-CROWN's "diversed_PGD" does the same). `device`: where the search runs (the module's
    device; its random starts are drawn there)."""
    if not queries:
        return np.zeros((0, restarts, 0)), np.zeros((0, restarts))
    device = torch.device(device)
    gen = generator(seed, device)
    module = module.eval()
    Q, R = len(queries), max(1, restarts)
    low = torch.tensor(np.stack([qq.region.box_low for qq in queries]), dtype=dtype, device=device)
    high = torch.tensor(np.stack([qq.region.box_high for qq in queries]), dtype=dtype, device=device)
    n = low.shape[1]
    # targets: per query, R disjuncts of the violation (cycled), restart 0 the whole violation
    targets = []
    for qq in queries:
        violation = q.negate(qq.body)
        parts = _dnf(violation)
        targets.append([violation] + [parts[r % len(parts)] for r in range(R - 1)])
    lo, hi = low.repeat_interleave(R, 0), high.repeat_interleave(R, 0)  # (Q*R, n)
    width = hi - lo
    x = lo + torch.rand(lo.shape, generator=gen, dtype=dtype, device=device) * width
    x[::R] = (lo[::R] + hi[::R]) / 2  # restart 0 starts at the centre

    batched = _batched_margins(targets, dtype, device)

    def margins(points: torch.Tensor) -> torch.Tensor:
        z = module(points).reshape(points.shape[0], -1)
        if batched is not None:  # linear targets (e.g. every j != y of CR): one tensor op
            return batched(z, points)
        out = []
        for k in range(Q):
            zs, xs = z[k * R:(k + 1) * R], points[k * R:(k + 1) * R]
            out.append(torch.stack([truth_margin(targets[k][r], zs[r:r + 1], xs[r:r + 1])[0]
                                    for r in range(R)]))
        return torch.cat(out)

    if odi_steps > 0:
        # output-diversified initialisation (Tashiro et al. 2020, ODI): a few sign steps of a
        # box half-width each up a random direction w of the output space, one w per restart
        # (restart 0 keeps the centre), so the restarts start from different output regions
        with torch.no_grad():
            m = module(x[:1]).reshape(1, -1).shape[1]
        w = torch.rand((x.shape[0], m), generator=gen, dtype=dtype, device=device) * 2 - 1
        for _ in range(odi_steps):
            x = x.detach().requires_grad_(True)
            z = module(x).reshape(x.shape[0], -1)
            grad, = torch.autograd.grad((z * w).sum(), x)
            with torch.no_grad():
                moved = torch.minimum(torch.maximum(x + width / 2 * grad.sign(), lo), hi)
                moved[::R] = x[::R]
                x = moved
    step = width / 4
    best_x = x.detach().clone()
    with torch.no_grad():
        best_v = margins(x)
    checkpoint_v = best_v.clone()
    every = max(5, steps // 10)
    for it in range(steps):
        if deadline is not None and time.perf_counter() > deadline:
            break
        x = x.detach().requires_grad_(True)
        v = margins(x)
        if not v.requires_grad:  # every target is a constant (a trivially true body): no
            break                # direction to search, and nothing to find
        grad, = torch.autograd.grad(v.sum(), x)
        with torch.no_grad():
            better = v > best_v
            best_v = torch.where(better, v, best_v)
            best_x[better] = x[better].detach()
            x = torch.minimum(torch.maximum(x + step * grad.sign(), lo), hi)
            if (it + 1) % every == 0:  # stalled restarts: halve the step, go back to the best
                stalled = best_v <= checkpoint_v
                step[stalled] /= 2
                x[stalled] = best_x[stalled]
                checkpoint_v = best_v.clone()
    with torch.no_grad():
        v = margins(x)
        better = v > best_v
        best_v = torch.where(better, v, best_v)
        best_x[better] = x[better]
        # the margin of the whole violation at each restart's best point
        z = module(best_x).reshape(best_x.shape[0], -1)
        full = torch.cat([truth_margin(targets[k][0], z[k * R:(k + 1) * R],
                                       best_x[k * R:(k + 1) * R]) for k in range(Q)])
    full = full.reshape(Q, R).double().cpu().numpy()
    points = best_x.reshape(Q, R, n).double().cpu().numpy()
    order = np.argsort(-full, axis=1)
    return (np.take_along_axis(points, order[:, :, None], 1),
            np.take_along_axis(full, order, 1))
