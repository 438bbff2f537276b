"""Complete verification by branch and bound (BaB) on ReLU splits, between one bound pass and
Marabou: what bound propagation leaves open is split into subdomains until each is proved or a
counterexample is found.

The method is beta-CROWN's (Wang et al. 2021, "Beta-CROWN: Efficient Bound Propagation with
Per-neuron Split Constraints for Neural Network Robustness Verification"):

- a subdomain fixes the sign of some unstable ReLU pre-activations z_k (active z_k >= 0 or
  inactive z_k <= 0); its intermediate bounds are the root's CROWN bounds clamped by the splits
  (sound: the subdomain lies inside the root region and satisfies its splits);
- its lower bound of a specification row c.f(x) + d is CROWN's on the clamped relaxation, with
  the split constraints s_k z_k <= 0 added as Lagrangian terms beta_k s_k z_k (beta >= 0, which
  only lowers the objective on the subdomain) and the lower ReLU slopes alpha and the betas
  optimised together by projected gradient ascent (every alpha in [0, 1] and beta >= 0 gives a
  valid bound, so the best bound of all iterations is kept);
- the neuron to split is chosen by the BaBSR intercept score (Bunel et al. 2020): |coefficient
  of the ReLU output| times the height u(-l)/(u-l) of its triangle relaxation;
- the point minimising each subdomain's linear bound over the box is evaluated on the network:
  where it violates the row, it is a candidate counterexample, returned for the caller to
  re-check on the real model (onnxruntime);
- networks with few inputs are split on the input box instead (the widest coordinate in half):
  CROWN is recomputed on each sub-box, intermediate bounds included.

A subdomain is closed only by a lower bound > 0 (or an empty clamped interval); the search
stops at the time budget or the domain limit with "unknown" and the reason. Domains are
processed in batches (torch, on the device of the network's bounds), lowest bound first.

Scope: query bodies that are a conjunction of linear output atoms (CR, targeted robustness,
VNN-LIB's robustness properties); each atom is its own BaB problem, and all must be proved.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from specrob.network.ir import Network, Relu
from specrob.lang import query as q
from specrob.bounds import (
    DTYPE,
    SAFETY,
    compile_network,
    Crown,
    ibp_bounds,
    BoundRegion,
    input_region,
    relaxations,
    adam_ascent,
    unsupported,
)
from specrob.bounds.common import Interval

__all__ = ["INPUT_SPLIT_MAX_INPUTS", "BabResult", "branch_and_bound"]

ATTACK_DOMAINS = 64  # per batch: PGD from the bound minimisers of this many lowest subdomains
ATTACK_STEPS = 12
CHUNK = 1 << 22  # elements of one coefficient tensor (float64: 32 MiB) in a bound pass
INPUT_SPLIT_MAX_INPUTS = 8  # networks with at most this many inputs are split on the input


@dataclass(frozen=True)
class BabResult:
    """One query's outcome: status "verified" | "falsified" | "unknown"; a candidate
    counterexample (n,) for "falsified" (to re-check on the real model); the reason for
    "unknown"; how many subdomains were bounded; seconds spent."""

    status: str
    counterexample: np.ndarray | None = None
    reason: str = ""
    domains: int = 0
    seconds: float = 0.0
    # the root's intermediate bounds (alpha-CROWN on every layer) per value name, arrays of
    # the value's shape: sound over the query's region, for Marabou (`solve_query`)
    bounds: dict | None = None


def _linear_rows(body: q.Formula) -> list[tuple[np.ndarray, float, bool]] | None:
    """The body as a conjunction of rows c.z + d > 0 (strict) or >= 0: [(c, d, strict)], or
    None when it is not a conjunction of linear output atoms."""
    if isinstance(body, q.Const):
        return [] if body.value else None
    if isinstance(body, q.Atom):
        if not body.is_linear_in_outputs() or body.op not in ("<=", "<", ">=", ">"):
            return None
        sign = 1.0 if body.op in (">=", ">") else -1.0
        return [(sign * body.lin.out[0], sign * float(body.lin.const[0]), body.op in ("<", ">"))]
    if isinstance(body, q.And):
        rows: list = []
        for item in body.items:
            part = _linear_rows(item)
            if part is None:
                return None
            rows += part
        return rows
    if isinstance(body, q.Or) and len(body.items) == 1:
        return _linear_rows(body.items[0])
    return None


def branch_and_bound(net: Network, queries: list[q.Query], *, timeout: float,
                     method: str = "alpha-crown", batch: int = 256, max_domains: int = 200_000,
                     iterations: int = 20, device: str | torch.device = "cpu",
                     seed: int = 0, split: str = "auto", root_steps: int = 20
                     ) -> list[BabResult]:
    """Decide each query (its body for every x of its region) by branch and bound.

    Args:
        net: the network IR (only ReLU nodes are split; LeakyRelu, Clip, Sigmoid, Tanh and
            MaxPool keep linear relaxations from the subdomain's bounds; Softmax is refused).
        queries: one per centre; bodies that are conjunctions of linear output atoms.
        timeout: seconds for all the queries together (shared in order).
        method: "alpha-crown" (optimised slopes and betas) or "crown" (no optimisation).
        batch: subdomains bounded at once; max_domains: open subdomains before giving up.
        iterations: gradient steps on alpha/beta per batch.
        root_steps: alpha-CROWN steps on every layer's bounds at the root (0: CROWN's).
        split: "relu", "input", or "auto" (input splitting for at most
            INPUT_SPLIT_MAX_INPUTS inputs, else ReLU splitting).
    Returns one BabResult per query. Raises nothing for an unsupported body or network: the
    result is "unknown" with the reason.
    """
    start = time.perf_counter()
    device = torch.device(device)
    out = []
    missing = [r for r in unsupported(net, "crown")]
    for k, query in enumerate(queries):
        t0 = time.perf_counter()
        left = timeout - (t0 - start)
        rows = _linear_rows(query.body)
        if missing:
            out.append(BabResult("unknown", reason=f"no branch and bound through {missing[0]}"))
            continue
        if rows is None:
            out.append(BabResult("unknown", reason="branch and bound needs a conjunction of "
                                                   "linear output constraints"))
            continue
        if left <= 0:
            out.append(BabResult("unknown", reason=f"branch and bound: no time left of "
                                                   f"{timeout:g} s"))
            continue
        torch.manual_seed(seed)
        solver = _Solver(net, query, device, batch, max_domains, iterations,
                         method == "alpha-crown", split, root_steps=root_steps)
        result = solver.solve(rows, deadline=time.perf_counter() + left)
        out.append(BabResult(result[0], result[1], result[2], solver.domains,
                             time.perf_counter() - t0, solver.bounds_found()))
    return out


class _Solver:
    """BaB for one query: its rows one after the other."""

    def __init__(self, net: Network, query: q.Query, device, batch: int, max_domains: int,
                 iterations: int, optimise: bool, split: str = "auto", refine: bool = True,
                 root_steps: int = 20):
        self.net, self.query, self.device = net, query, device
        self.batch, self.max_domains, self.iterations = batch, max_domains, iterations
        self.refine = refine
        self.root_steps = root_steps
        self.root_bounds: dict[str, Interval] | None = None
        self.optimise = optimise
        self.comp = compile_network(net, device)
        reg = query.region
        self.region = input_region(net, torch.as_tensor(reg.centre[None, :], dtype=DTYPE,
                                                   device=device),
                              reg.eps, reg.p, reg.low, reg.high)
        self.domains = 0
        self.relus = [i for i in self.comp.live if isinstance(self.comp.ops[i].node, Relu)]
        self.relu_inputs = [self.comp.ops[i].node.inputs[0] for i in self.relus]
        self.input_split = (split == "input" or
                            (split == "auto" and net.input_size <= INPUT_SPLIT_MAX_INPUTS))

    # --- the whole query ---------------------------------------------------------------------
    def solve(self, rows, deadline: float) -> tuple[str, np.ndarray | None, str]:
        if not rows:
            return "verified", None, ""
        m = self.query.classes
        C = torch.tensor(np.stack([r[0] for r in rows]), dtype=DTYPE, device=self.device)
        d = torch.tensor([r[1] for r in rows], dtype=DTYPE, device=self.device)
        for k in range(len(rows)):
            if self.input_split:
                status, x, reason = self._input_bab(C[k], d[k], rows[k][2], deadline)
            else:
                status, x, reason = self._relu_bab(C[k], d[k], rows[k][2], deadline)
            if status != "verified":
                return status, x, (f"row {k + 1} of {len(rows)}: {reason}" if reason else "")
        del m
        return "verified", None, ""

    def bounds_found(self) -> dict | None:
        """The root bounds as numpy arrays (without the batch axis), or None."""
        if self.root_bounds is None:
            return None
        return {v: (l[0].detach().cpu().numpy(), u[0].detach().cpu().numpy())
                for v, (l, u) in self.root_bounds.items()}

    def _violates(self, x: Tensor, c: Tensor, d: Tensor, strict: bool) -> Tensor:
        """Rows of x (D, n) inside the region where c.f(x) + d violates the row (<= 0 for a
        strict row), on the float64 network."""
        with torch.no_grad():
            z = self._module()(x.reshape(x.shape[0], *self.net.input_shape))
            v = z.reshape(x.shape[0], -1) @ c + d
            reg = self.region
            inside = ((x >= reg.box_low) & (x <= reg.box_high)).all(-1)
            if reg.p != math.inf:
                dist = torch.linalg.vector_norm(x - reg.x0, ord=reg.p, dim=-1)
                inside &= dist <= reg.eps
        return inside & (v <= 0 if strict else v < 0)

    def _attack(self, x: Tensor, c: Tensor, d: Tensor, strict: bool) -> np.ndarray | None:
        """PGD (sign steps, halved every few steps) decreasing c.f(x) + d from the rows of x
        (K, n) inside the region's box; the first point violating the row, or None."""
        if x.shape[0] == 0:
            return None
        reg, module = self.region, self._module()
        lo, hi = reg.box_low.expand_as(x), reg.box_high.expand_as(x)
        step = (hi - lo) / 4
        x = x.detach().clone()
        for it in range(ATTACK_STEPS):
            x.requires_grad_(True)
            with torch.enable_grad():
                v = module(x.reshape(x.shape[0], *self.net.input_shape)).reshape(
                    x.shape[0], -1) @ c + d
                (grad,) = torch.autograd.grad(v.sum(), x)
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x - step * grad.sign(), lo), hi)
                if it % 3 == 2:
                    step = step / 2
        bad = self._violates(x, c, d, strict)
        return x[int(bad.nonzero()[0, 0])].cpu().numpy() if bool(bad.any()) else None

    def _module(self):
        if not hasattr(self, "_torch"):
            from specrob.network.torch_exec import to_torch
            self._torch = to_torch(self.net).double().to(self.device).eval()
        return self._torch

    # --- ReLU splitting ------------------------------------------------------------------------
    def _relu_bab(self, c: Tensor, d: Tensor, strict: bool, deadline: float):
        comp, region = self.comp, self.region
        if self.root_bounds is None:  # once per query, shared by its rows
            with torch.no_grad():
                ibp = ibp_bounds(comp, region)
                root = Crown(comp, region, ibp, CHUNK)
                if self.optimise and self.root_steps > 0:
                    # alpha-CROWN on every layer's bounds (intersected with CROWN's): the
                    # tighter root bounds every subdomain starts from (Xu et al. 2021)
                    root = Crown(comp, region, root.bounds, CHUNK,
                                  alpha_steps=self.root_steps, alpha_lr=0.1)
            self.root_bounds = root.bounds
        self.producer_index = comp.producer
        self.first_affected = min(self.relus, default=len(comp.ops))
        shapes = {i: tuple(comp.shapes[comp.ops[i].node.inputs[0]]) for i in self.relus}
        splits = {i: torch.zeros((1, *shapes[i]), dtype=torch.int8, device=self.device)
                  for i in self.relus}
        # each open subdomain carries the bounds of every ReLU input it was bounded with:
        # its children start from them (a child lies inside its parent), not from the root's
        inter = {v: self.root_bounds[v] for v in self.relu_inputs}
        lb, x_best, node, index, inter = self._bound(splits, c, d, inter)
        self.domains += 1
        if bool(self._violates(x_best, c, d, strict)[0]):
            return "falsified", x_best[0].cpu().numpy(), ""
        if float(lb[0]) > 0:
            return "verified", None, ""
        pool = _Pool(lb, splits, node, index, inter)  # open subdomains, each one's next split
        while pool.size:
            if time.perf_counter() > deadline:
                return "unknown", None, (f"branch and bound timed out with {pool.size} "
                                         f"open subdomains (worst bound {float(pool.lb.min()):.3g})")
            if pool.size > self.max_domains:
                return "unknown", None, f"more than {self.max_domains} open subdomains"
            order = torch.argsort(pool.lb)
            batch, pool = pool.take(order[:self.batch]), pool.take(order[self.batch:])
            stuck = batch.node < 0
            if bool(stuck.any()):  # every ReLU fixed: the network is affine on the subdomain
                # (unless it has other nonlinear nodes), and the optimal beta makes the bound
                # the LP's: optimise much longer
                fixed = batch.take(stuck.nonzero().flatten())
                lb, x, _, _, _ = self._bound(fixed.splits, c, d, fixed.inter,
                                             iterations=10 * self.iterations + 100)
                bad = self._violates(x, c, d, strict)
                if bool(bad.any()):
                    return "falsified", x[int(bad.nonzero()[0, 0])].cpu().numpy(), ""
                if bool((lb <= 0).any()):
                    others = [f"{type(self.comp.ops[i].node).__name__} "
                              f"'{self.comp.ops[i].node.name}'" for i in self.comp.live
                              if self.comp.ops[i].kind != "linear" and i not in self.relus]
                    return "unknown", None, (
                        "a subdomain with every ReLU fixed is not proved by its optimised "
                        "linear bound" + (f" (not split, so still relaxed: {', '.join(others)})"
                                          if others else ""))
                batch = batch.take((~stuck).nonzero().flatten())
                if batch.size == 0:
                    continue
            children = self._children(batch.splits, (batch.node, batch.index))
            both = {v: (torch.cat([l, l]), torch.cat([u, u])) for v, (l, u) in batch.inter.items()}
            lb, x, node, index, inter = self._bound(children, c, d, both)
            self.domains += lb.numel()
            bad = self._violates(x, c, d, strict)
            if bool(bad.any()):
                return "falsified", x[int(bad.nonzero()[0, 0])].cpu().numpy(), ""
            # an attack on the promising subdomains: PGD from the points minimising the
            # linear bounds of the lowest-bound ones (any point of the box is a valid
            # counterexample, so the search is not confined to the subdomain)
            lowest = torch.argsort(lb)[:ATTACK_DOMAINS]
            found = self._attack(x[lowest][lb[lowest] <= 0], c, d, strict)
            if found is not None:
                return "falsified", found, ""
            open_ = (lb <= 0).nonzero().flatten()
            pool = pool.join(_Pool(lb, children, node, index, inter).take(open_))
        return "verified", None, ""

    def _base(self, inter: dict, D: int) -> dict:
        """Every value's bounds for D subdomains: a ReLU input's from `inter` (the parent's),
        the others' the root's (expanded)."""
        assert self.root_bounds is not None  # set by _relu_bab before any subdomain
        out = {}
        for v, (l, u) in self.root_bounds.items():
            if v in inter:
                out[v] = inter[v]
            else:
                out[v] = (l.expand(D, *l.shape[1:]), u.expand(D, *u.shape[1:]))
        return out

    def _clamped(self, splits: dict[int, Tensor], inter: dict):
        """The parent's intermediate bounds per subdomain, clamped by its splits; and a mask
        of subdomains whose clamped bounds are empty (infeasible splits: closed)."""
        D = next(iter(splits.values())).shape[0] if splits else 1
        bounds = {}
        empty = torch.zeros(D, dtype=torch.bool, device=self.device)
        by_input = {self.comp.ops[i].node.inputs[0]: i for i in self.relus}
        for v, (l, u) in self._base(inter, D).items():
            l, u = l.expand(D, *l.shape[1:]), u.expand(D, *u.shape[1:])
            if v in by_input:
                s = splits[by_input[v]]
                l = torch.where(s > 0, l.clamp(min=0.0), l)
                u = torch.where(s < 0, u.clamp(max=0.0), u)
                empty |= (l > u).reshape(D, -1).any(-1)
                u = torch.maximum(u, l)
            bounds[v] = (l, u)
        return bounds, empty

    def _refined(self, splits: dict[int, Tensor], inter: dict):
        """Intermediate bounds recomputed by CROWN for every subdomain, each value's bounds
        clamped by the parent's and by the splits before the layers after it are bounded (so a
        split tightens every later layer); values before the first ReLU keep the root's bounds.
        Only neurons unstable in some subdomain of the batch are bounded again (their union:
        on mnistfc it is as small as the largest per-subdomain count, and one shared
        coefficient matrix is cheaper than one per subdomain). Returns (bounds, empty) like
        `_clamped`."""
        D = next(iter(splits.values())).shape[0]
        by_input = {self.comp.ops[i].node.inputs[0]: i for i in self.relus}
        first = self.first_affected
        base = self._base(inter, D)
        empty = torch.zeros(D, dtype=torch.bool, device=self.device)

        def clamp(value: str, l: Tensor, u: Tensor):
            nonlocal empty
            rl, ru = base[value]
            l, u = torch.maximum(l, rl), torch.minimum(u, ru)
            if value in by_input:
                s = splits[by_input[value]]
                l = torch.where(s > 0, l.clamp(min=0.0), l)
                u = torch.where(s < 0, u.clamp(max=0.0), u)
            empty |= (l > u).reshape(D, -1).any(-1)
            return l, torch.maximum(u, l)

        solver = self

        class Split(Crown):
            def _refine(self, value, l, u):  # `self`: this Crown; `solver`: the BaB solver
                if solver.producer_index.get(value, -1) < first:
                    return clamp(value, *base[value])
                l, u = Crown._refine(self, value, *clamp(value, l, u))
                return clamp(value, l, u)

        region = _repeat(self.region, D)
        with torch.no_grad():
            crown = Split(self.comp, region, base, CHUNK)
        return crown, empty

    def _sub(self, bounds, D: int) -> Crown:
        """A CROWN object over D copies of the root region with the given bounds."""
        sub = object.__new__(Crown)
        sub.comp, sub.chunk, sub.B = self.comp, CHUNK, D
        sub.region = _repeat(self.region, D)
        sub.bounds = bounds
        sub.relax = relaxations(self.comp, bounds)  # ReLU terms, and Sigmoid, Tanh, MaxPool
        return sub

    def _bound(self, splits: dict[int, Tensor], c: Tensor, d: Tensor, inter: dict,
               iterations: int | None = None):
        """Lower bounds (D,) of c.f + d per subdomain, the box points minimising them, the
        next split (node, index) of each, and the bounds of every ReLU input used."""
        if self.refine and splits and any(bool((s != 0).any()) for s in splits.values()):
            sub, empty = self._refined(splits, inter)
            bounds = sub.bounds
        else:
            bounds, empty = self._clamped(splits, inter)
            sub = self._sub(bounds, empty.shape[0])
        D = empty.shape[0]
        out = self.comp.output_name
        A = c.reshape(1, 1, *self.comp.output_shape).expand(D, 1, *self.comp.output_shape)
        c0 = d.reshape(1, 1).expand(D, 1)
        betas_sign = {i: -splits[i].to(DTYPE).unsqueeze(1) for i in self.relus
                      if bool((splits[i] != 0).any())}
        keep: dict = {}
        with torch.no_grad():
            best = sub.backward(out, A, c0, keep=keep)[:, 0]
        best_input = keep.get("input")
        scored = keep
        iterations = self.iterations if iterations is None else iterations
        if self.optimise and iterations > 0:
            alphas = sub.alphas_for(1)
            params = [a for group in alphas.values() for a in group if a is not None]
            betas = {i: torch.zeros_like(s).requires_grad_(True) for i, s in betas_sign.items()}
            params_b = list(betas.values())
            if params or params_b:
                everything = params + params_b
                moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in everything]
                for it in range(iterations):
                    kk: dict = {}
                    with torch.enable_grad():
                        terms = {i: betas[i] * betas_sign[i] for i in betas}
                        bound = sub.backward(out, A, c0, alphas, terms, keep=kk)[:, 0]
                        scored = kk
                        better = bound.detach() > best
                        best = torch.where(better, bound.detach(), best)
                        if kk.get("input") is not None and best_input is not None:
                            mask = better.reshape(-1, *([1] * (best_input.dim() - 1)))
                            best_input = torch.where(mask, kk["input"].detach(), best_input)
                        grads = torch.autograd.grad(bound.sum(), everything, allow_unused=True)
                    adam_ascent(everything, grads, moments, it, 0.1)
                    with torch.no_grad():
                        for a in params:
                            a.clamp_(0.0, 1.0)
                        for b in params_b:
                            b.clamp_(min=0.0)
        # the safety margin for float64 rounding, as spec_bounds applies it
        best = best - SAFETY * (1 + best.abs())
        best = torch.where(empty, torch.full_like(best, math.inf), best)
        node, index = self._score(bounds, splits, scored, D)
        used = {v: (bounds[v][0].expand(D, *bounds[v][0].shape[1:]),
                    bounds[v][1].expand(D, *bounds[v][1].shape[1:])) for v in self.relu_inputs}
        return best.detach(), self._argmin(best_input, D), node, index, used

    def _argmin(self, A_in: Tensor | None, D: int) -> Tensor:
        """Per subdomain, the corner of the root box minimising the linear bound."""
        reg = self.region
        lo, hi = reg.box_low.expand(D, -1), reg.box_high.expand(D, -1)
        if A_in is None:
            return (lo + hi) / 2
        a = A_in.reshape(D, -1)
        return torch.where(a > 0, lo, hi)

    def _score(self, bounds, splits: dict[int, Tensor], keep: dict, D: int):
        """Per subdomain, the (node, flat index) of the unstable, unsplit neuron with the
        largest BaBSR intercept score (from the coefficients `keep` of its bound pass); node -1
        where none is left."""
        best_score = torch.full((D,), -1.0, dtype=DTYPE, device=self.device)
        best_node = torch.full((D,), -1, dtype=torch.long, device=self.device)
        best_index = torch.zeros(D, dtype=torch.long, device=self.device)
        for i in self.relus:
            l, u = bounds[self.comp.ops[i].node.inputs[0]]
            l, u = l.reshape(D, -1), u.reshape(D, -1)
            free = (splits[i].reshape(D, -1) == 0) & (l < 0) & (u > 0)
            if not bool(free.any()):
                continue
            height = u * (-l) / (u - l).clamp_min(1e-300)
            coef = keep.get(i)
            weight = coef.detach().reshape(D, -1).abs() if coef is not None else \
                torch.ones_like(l)
            score = torch.where(free, weight * height + 1e-12 * height, torch.full_like(l, -1.0))
            value, index = score.max(-1)
            better = value > best_score
            best_score = torch.where(better, value, best_score)
            best_node = torch.where(better, torch.full_like(best_node, i), best_node)
            best_index = torch.where(better, index, best_index)
        return best_node, best_index

    def _children(self, splits: dict[int, Tensor], choice) -> dict[int, Tensor]:
        """Two children per subdomain: the chosen neuron active (+1) and inactive (-1). A
        subdomain with nothing to split is kept once (its bound does not change)."""
        node, index = choice
        D = node.shape[0]
        out = {}
        for i, s in splits.items():
            a, b = s.clone().reshape(D, -1), s.clone().reshape(D, -1)
            rows = (node == i).nonzero().flatten()
            a[rows, index[rows]] = 1
            b[rows, index[rows]] = -1
            out[i] = torch.cat([a, b]).reshape(2 * D, *s.shape[1:])
        return out

    # --- input splitting -----------------------------------------------------------------------
    def _input_bab(self, c: Tensor, d: Tensor, strict: bool, deadline: float):
        reg = self.region
        lows, highs = reg.box_low.clone(), reg.box_high.clone()
        C = c.reshape(1, -1)
        while lows.shape[0]:
            if time.perf_counter() > deadline:
                return "unknown", None, (f"input splitting timed out with {lows.shape[0]} open "
                                         f"boxes")
            if lows.shape[0] > self.max_domains:
                return "unknown", None, f"more than {self.max_domains} open boxes"
            lows_b, highs_b = lows[:self.batch], highs[:self.batch]
            rest_l, rest_h = lows[self.batch:], highs[self.batch:]
            D = lows_b.shape[0]
            sub = _boxes(reg, lows_b, highs_b)
            with torch.no_grad():
                ibp = ibp_bounds(self.comp, sub)
                crown = Crown(self.comp, sub, ibp, CHUNK)
                keep: dict = {}
                A = C.reshape(1, 1, *self.comp.output_shape).expand(D, 1, *self.comp.output_shape)
                lb = crown.backward(self.comp.output_name, A, d.reshape(1, 1).expand(D, 1),
                                    keep=keep)[:, 0]
            lb = lb - SAFETY * (1 + lb.abs())
            self.domains += D
            mid = (lows_b + highs_b) / 2
            bad = self._violates(mid, c, d, strict)
            if bool(bad.any()):
                return "falsified", mid[int(bad.nonzero()[0, 0])].cpu().numpy(), ""
            corner = self._corner(keep.get("input"), lows_b, highs_b)
            bad = self._violates(corner, c, d, strict)
            if bool(bad.any()):
                return "falsified", corner[int(bad.nonzero()[0, 0])].cpu().numpy(), ""
            open_ = lb <= 0
            lo, hi = lows_b[open_], highs_b[open_]
            width = hi - lo
            if lo.shape[0] and bool((width.max(-1).values <= 1e-9).any()):
                return "unknown", None, "input boxes of width 1e-9 still unproved"
            axis = width.argmax(-1)
            half = lo.gather(1, axis[:, None]) + width.gather(1, axis[:, None]) / 2
            hi_left = hi.clone().scatter_(1, axis[:, None], half)
            lo_right = lo.clone().scatter_(1, axis[:, None], half)
            lows = torch.cat([rest_l, lo, lo_right])
            highs = torch.cat([rest_h, hi_left, hi])
        return "verified", None, ""

    @staticmethod
    def _corner(A_in: Tensor | None, lo: Tensor, hi: Tensor) -> Tensor:
        if A_in is None:
            return (lo + hi) / 2
        a = A_in.reshape(lo.shape[0], -1)
        return torch.where(a > 0, lo, hi)


@dataclass(frozen=True)
class _Pool:
    """Subdomains as batched tensors: lower bounds (P,), splits per ReLU node (P, *shape) in
    {-1, 0, +1}, the next split (node, flat index) of each, and the bounds of every ReLU input
    each was bounded with."""

    lb: Tensor
    splits: dict
    node: Tensor
    index: Tensor
    inter: dict

    @property
    def size(self) -> int:
        return int(self.lb.numel())

    def take(self, rows: Tensor) -> _Pool:
        return _Pool(self.lb[rows], {i: s[rows] for i, s in self.splits.items()},
                     self.node[rows], self.index[rows],
                     {v: (l[rows], u[rows]) for v, (l, u) in self.inter.items()})

    def join(self, other: _Pool) -> _Pool:
        return _Pool(torch.cat([self.lb, other.lb]),
                     {i: torch.cat([s, other.splits[i]]) for i, s in self.splits.items()},
                     torch.cat([self.node, other.node]), torch.cat([self.index, other.index]),
                     {v: (torch.cat([l, other.inter[v][0]]), torch.cat([u, other.inter[v][1]]))
                      for v, (l, u) in self.inter.items()})


def _repeat(region: BoundRegion, D: int) -> BoundRegion:
    """The region of one centre repeated D times (views, no copies)."""
    out = object.__new__(BoundRegion)
    out.x0, out.eps, out.p = region.x0.expand(D, -1), region.eps.expand(D), region.p
    out.box_low, out.box_high = region.box_low.expand(D, -1), region.box_high.expand(D, -1)
    out.box_mid, out.box_rad = region.box_mid.expand(D, -1), region.box_rad.expand(D, -1)
    return out


def _boxes(region: BoundRegion, lows: Tensor, highs: Tensor) -> BoundRegion:
    """Sub-boxes of one centre's region: the ball stays (its bound is still valid on a subset)."""
    D = lows.shape[0]
    out = object.__new__(BoundRegion)
    out.x0, out.eps, out.p = region.x0.expand(D, -1), region.eps.expand(D), region.p
    out.box_low, out.box_high = lows, highs
    out.box_mid, out.box_rad = (lows + highs) / 2, (highs - lows) / 2
    return out
