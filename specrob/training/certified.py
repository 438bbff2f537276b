"""Certified training: the property's body, linearised over its ball by the bound propagation
that `specrob verify` proves with (`specrob.bounds`), as a loss.

Per centre the property is encoded exactly as the verifier encodes it (`lang.encode`: index
quantifiers expanded, SCR through its sufficient margin condition, SR with f(x0)), each atom
that is a linear inequality in the outputs becomes a row c . f(x) + d > 0
(`lang.query.output_rows`), and a lower bound L of each row over B_p(x0, eps) ∩ box is
computed through the live network (`network.trace`: the module's own parameters, so L is
differentiable in them):

- "ibp": interval bound propagation (Gowal et al. 2018);
- "crown-ibp": CROWN's backward pass over IBP's intermediate bounds (Zhang et al. 2020),
  mixed with IBP's as beta * CROWN-IBP + (1 - beta) * IBP, beta ramped from 1 to `crown_end`.

The worst-case violation of the body is then the body with every atom replaced by its row's
lower bound being > 0, in the chosen logic (`cert_loss="logic"`, the training's --logic: DL2's
relu(-L) summed over a conjunction), or, for a conjunction of rows, the cross-entropy of the
worst-case margins log(1 + sum_j exp(-L_j)) (`cert_loss="ce"`: for CR this is exactly the
IBP / CROWN-IBP papers' cross-entropy of the worst-case logits).

A body whose atoms read the inputs, hold norms of outputs (LR) or are equalities has no
such rows: `CertifiedError` at setup, naming the property and the atom kind.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from specrob.bounds.crown import Crown, ibp_bounds
from specrob.bounds.network import CompiledNetwork
from specrob.bounds.region import BoundRegion
from specrob.bounds.spec import interval_spec
from specrob.errors import SpecrobError
from specrob.lang import ir
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder, Unsupported
from specrob.logic.logics import Boolean, Logic
from specrob.network.trace import TraceError, trace_module
from specrob.training.config import BOUNDS, CERT_LOSSES


class CertifiedError(SpecrobError, ValueError):
    """A property or network certified training cannot bound; the message says which part and
    what to use instead."""


@dataclass(frozen=True)
class Schedule:
    """The ramp of certified training (Gowal et al. 2018; Zhang et al. 2020), over the epochs
    done t (fractional: epoch index + the share of its batches done): nothing but CE for
    t < warmup, then over the next `ramp` epochs eps grows linearly from 0 to the property's
    radius, the natural loss's weight kappa from 1 to `kappa` and CROWN-IBP's weight beta from
    1 to `crown_end`; constant after. In epochs, not in shares of the training, so a run
    extended with more epochs (or resumed) follows the same schedule."""

    warmup: float = 1.0
    ramp: float = 4.0
    kappa: float = 0.5
    crown_end: float = 0.0

    def scale(self, t: float) -> float:
        """The share s in [0, 1] of the ramp done after t epochs."""
        if t < self.warmup:
            return 0.0
        return 1.0 if self.ramp <= 0 else min(1.0, (t - self.warmup) / self.ramp)

    def at(self, t: float) -> tuple[float, float, float]:
        """(eps share, kappa, beta) after t epochs."""
        s = self.scale(t)
        return s, 1.0 - s * (1.0 - self.kappa), 1.0 - s * (1.0 - self.crown_end)


@dataclass(frozen=True, eq=False)
class _Prepared:
    """One centre's body (the verifier's query body), its rows C (k, m) and d (k,), the
    body's shape (centres of one shape are evaluated together) and whether it is false."""

    body: q.Formula
    C: np.ndarray
    d: np.ndarray
    shape: str
    false: bool


@dataclass(frozen=True, eq=False)
class RowBatch:
    """A batch's prepared bodies and the number of rows of each (counts, (B,))."""

    prepared: list[_Prepared]
    counts: np.ndarray

    @property
    def formulas(self) -> list[q.Formula]:
        return [p.body for p in self.prepared]


class CertifiedLoss:
    """The property's certified loss for one model: `lower` gives the rows' lower bounds,
    `loss` the worst-case violation per centre, `proved` which centres the bounds prove.

    `classes` None: the traced network's outputs. Shapes: x0 (B, n) in the data's units, y
    (B,) labels, fx0 (B, m) or None; `lower`
    returns (B, K) (rows padded with +1, never read) and the batch's bodies (`RowBatch`)."""

    def __init__(self, prop: ir.Property, model: nn.Module, input_dim: int,
                 classes: int | None, *,
                 bound: str = "ibp", logic: Logic, cert_loss: str = "logic",
                 source: str = "model"):
        if bound not in BOUNDS:
            raise CertifiedError(f"unknown bound {bound!r}: choose one of {', '.join(BOUNDS)}")
        if cert_loss not in CERT_LOSSES:
            raise CertifiedError(f"unknown certified loss {cert_loss!r}: choose one of "
                                 f"{', '.join(CERT_LOSSES)}")
        self.prop, self.bound, self.logic, self.cert_loss = prop, bound, logic, cert_loss
        try:
            self.net = trace_module(model, (input_dim,), source=source)
        except TraceError as exc:
            raise CertifiedError(str(exc)) from None
        classes = self.net.output_size if classes is None else classes
        self.n, self.m = input_dim, classes
        if self.net.output_size != classes:
            raise CertifiedError(f"{source}: the traced network has {self.net.output_size} "
                                 f"outputs, the data {classes} classes")
        self.encoder = Encoder(prop, input_dim, classes)
        if self.encoder.prop.ball.p not in (1.0, 2.0, math.inf):
            raise CertifiedError(f"property '{prop.name}': certified training bounds l_1, l_2 "
                                 f"and l_inf balls, not p = {prop.ball.p:g}")
        self.needs_fx0 = _mentions(prop, ir.Net(True))
        self.needs_x0 = _mentions(prop, ir.Input(True))
        self._cache: dict[tuple, _Prepared] = {}
        # the body's shape does not depend on the centre's numbers: one dry run shows
        # whether every atom has a row
        body = self._prepared(np.zeros(input_dim), 0, np.zeros(classes)).body
        if cert_loss == "ce" and q.has_or(body):
            raise CertifiedError(f"property '{prop.name}': its body has a disjunction; the "
                                 f"certified cross-entropy (--cert-loss ce) needs a "
                                 f"conjunction of rows; use --cert-loss logic")

    # --- the rows -----------------------------------------------------------------------
    def _prepared(self, x0: np.ndarray, y: int, fx0: np.ndarray) -> _Prepared:
        """The centre's body and its rows; cached by label when the body reads neither x0
        nor f(x0) (CR: one per class)."""
        key = (y, fx0.tobytes() if self.needs_fx0 else None,
               x0.tobytes() if self.needs_x0 else None)
        if key in self._cache:
            return self._cache[key]
        try:
            body = self.encoder.query(Centre(x0, y, fx0)).body
        except Unsupported as exc:
            raise CertifiedError(f"property '{self.prop.name}': {exc}; certified training "
                                 f"bounds linear output rows only") from None
        check_rows(body, self.prop.name)
        rows = q.output_rows(body)
        prepared = _Prepared(body, np.array([c for c, _ in rows]).reshape(len(rows), self.m),
                             np.array([d for _, d in rows], dtype=np.float64),
                             _shape(body), isinstance(body, q.Const) and not body.value)
        if not (self.needs_fx0 or self.needs_x0):  # the rows do not depend on the centre
            self._cache[key] = prepared
        return prepared

    def lower(self, x0: torch.Tensor, y: torch.Tensor, fx0: torch.Tensor | None, *,
              eps_share: float, beta: float) -> tuple[torch.Tensor, RowBatch]:
        """Lower bounds (B, K) of every centre's rows over its ball scaled by eps_share, and
        the batch's bodies and rows (padding rows are +1, never read)."""
        B = x0.shape[0]
        xs = x0.detach().reshape(B, -1).cpu().double().numpy()
        ys = y.detach().cpu().numpy()
        fs = fx0.detach().reshape(B, -1).cpu().double().numpy() if fx0 is not None \
            else np.zeros((B, self.m))
        prepared = [self._prepared(xs[b], int(ys[b]), fs[b]) for b in range(B)]
        counts = np.array([len(p.d) for p in prepared])
        batch = RowBatch(prepared, counts)
        K = int(counts.max(initial=0))
        device, dtype = x0.device, x0.dtype
        if K == 0:
            return torch.zeros((B, 0), device=device, dtype=dtype), batch
        C = np.zeros((B, K, self.m))
        d = np.ones((B, K))
        for b, p in enumerate(prepared):
            C[b, :counts[b]], d[b, :counts[b]] = p.C, p.d
        Ct = torch.tensor(C, device=device, dtype=dtype)
        dt = torch.tensor(d, device=device, dtype=dtype)
        eps = torch.full((B,), self.encoder.eps * eps_share, device=device, dtype=dtype)
        region = BoundRegion(x0.detach().reshape(B, -1), eps, self.prop.ball.p,
                             self.encoder.low, self.encoder.high)
        # compiled again each step: the operators read the parameters' current values
        comp = CompiledNetwork(self.net, device, dtype)
        ibp = ibp_bounds(comp, region)
        l, u = (v.reshape(B, -1) for v in ibp[self.net.output_name])
        lower = interval_spec(Ct, l, u) + dt
        if self.bound == "crown-ibp" and beta > 0:
            crown = Crown(comp, region, ibp, chunk_elements=1 << 40, refine=False)
            A = Ct.reshape(B, K, *self.net.output_shape)
            lower = beta * crown.backward(self.net.output_name, A, dt) + (1 - beta) * lower
        return lower, batch

    # --- the loss -----------------------------------------------------------------------
    def loss(self, lower: torch.Tensor, batch: RowBatch) -> torch.Tensor:
        """The worst-case violation per centre (B,), >= 0: `cert_loss` of the body with each
        atom replaced by its row's lower bound."""
        if self.cert_loss == "ce":
            B, K = lower.shape
            real = torch.arange(K, device=lower.device)[None, :] < \
                torch.as_tensor(batch.counts, device=lower.device)[:, None]
            margins = torch.where(real, -lower, torch.full_like(lower, -math.inf))
            out = torch.logsumexp(torch.cat([lower.new_zeros(B, 1), margins], 1), 1)
            false = torch.as_tensor([p.false for p in batch.prepared], device=lower.device)
            # a body folded to false by the encoder has no rows: a constant loss
            return torch.where(false, torch.full_like(out, math.log(2.0)), out)
        return self._evaluate(lower, batch, self.logic, loss=True)

    def proved(self, lower: torch.Tensor, batch: RowBatch) -> torch.Tensor:
        """Which centres the bounds prove (B,) bool: every atom needed has L > 0."""
        return self._evaluate(lower.detach(), batch, Boolean(), loss=False)

    def _evaluate(self, lower: torch.Tensor, batch: RowBatch, logic: Logic,
                  loss: bool) -> torch.Tensor:
        # centres whose bodies have one shape are evaluated together
        groups: dict[str, list[int]] = {}
        for b, p in enumerate(batch.prepared):
            groups.setdefault(p.shape, []).append(b)
        order, parts = [], []
        for members in groups.values():
            idx = torch.tensor(members, device=lower.device)
            v = _value(batch.prepared[members[0]].body, lower.index_select(0, idx), logic, [0])
            v = logic.loss(v) if loss else v
            parts.append(v.expand(len(members)) if v.dim() == 0 else v)
            order += members
        inverse = torch.empty(len(order), dtype=torch.long, device=lower.device)
        inverse[torch.tensor(order, device=lower.device)] = torch.arange(len(order),
                                                                       device=lower.device)
        return torch.cat(parts)[inverse]


def _value(f: q.Formula, rows: torch.Tensor, logic: Logic, cursor: list[int]) -> torch.Tensor:
    """The formula's value in `logic`, each row atom read as `L > 0` (or >=) with L the row's
    lower bound; rows (G, K) consumed in `output_rows` order."""
    if isinstance(f, q.Const):
        return logic.crisp(torch.full((rows.shape[0],), f.value, dtype=torch.bool,
                                      device=rows.device))
    if isinstance(f, q.Atom):
        L = rows[:, cursor[0]]
        cursor[0] += 1
        op = ">" if f.op in (">", "<") else ">="
        return logic.atom(op, L, torch.zeros_like(L))
    values = [_value(i, rows, logic, cursor) for i in f.items]
    if not values:
        return logic.crisp(torch.full((rows.shape[0],), isinstance(f, q.And), dtype=torch.bool,
                                      device=rows.device))
    return logic.conj(values) if isinstance(f, q.And) else logic.disj(values)


def _shape(f: q.Formula) -> str:
    if isinstance(f, q.Const):
        return "T" if f.value else "F"
    if isinstance(f, q.Atom):
        return "s" if f.op in (">", "<") else "w"
    tag = "&" if isinstance(f, q.And) else "|"
    return tag + "(" + ",".join(_shape(i) for i in f.items) + ")"


def check_rows(f: q.Formula, name: str) -> None:
    """Every atom must be a linear inequality in the outputs (a row)."""
    if isinstance(f, q.Atom):
        if f.norms:
            raise CertifiedError(f"property '{name}': an atom holds a norm of the outputs or "
                                 f"inputs (e.g. LR's Lipschitz bound), which bound propagation "
                                 f"does not linearise; train it with --regime constraint")
        if f.lin.uses_inputs():
            raise CertifiedError(f"property '{name}': an atom reads the input x; certified "
                                 f"training bounds linear functions of the outputs only; train "
                                 f"it with --regime constraint")
        if f.op not in ("<", "<=", ">", ">="):
            raise CertifiedError(f"property '{name}': an atom is an {f.op!r} comparison, which "
                                 f"no positive lower bound proves; use < or >")
    elif isinstance(f, (q.And, q.Or)):
        for i in f.items:
            check_rows(i, name)


def _mentions(prop: ir.Property, term) -> bool:
    """Whether the body reads `term` (f(x0): ir.Net(True); x0: ir.Input(True))."""
    from specrob.lang.walk import mentions
    return mentions(prop.body, lambda node: node == term)
