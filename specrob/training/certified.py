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


class CertifiedLoss:
    """The property's certified loss for one model: `lower` gives the rows' lower bounds,
    `__call__` the loss per centre.

    Shapes: x0 (B, n) in the data's units, y (B,) labels, fx0 (B, m) or None; `lower`
    returns (B, K) (rows padded with +1, never read) and the per-centre formulas."""

    def __init__(self, prop: ir.Property, model: nn.Module, input_dim: int, classes: int, *,
                 bound: str = "ibp", logic: Logic, cert_loss: str = "logic",
                 source: str = "model"):
        if bound not in BOUNDS:
            raise CertifiedError(f"unknown bound {bound!r}: choose one of {', '.join(BOUNDS)}")
        if cert_loss not in CERT_LOSSES:
            raise CertifiedError(f"unknown certified loss {cert_loss!r}: choose one of "
                                 f"{', '.join(CERT_LOSSES)}")
        self.prop, self.bound, self.logic, self.cert_loss = prop, bound, logic, cert_loss
        self.n, self.m = input_dim, classes
        try:
            self.net = trace_module(model, (input_dim,), source=source)
        except TraceError as exc:
            raise CertifiedError(str(exc)) from None
        if self.net.output_size != classes:
            raise CertifiedError(f"{source}: the traced network has {self.net.output_size} "
                                 f"outputs, the data {classes} classes")
        self.encoder = Encoder(prop, input_dim, classes)
        if self.encoder.prop.ball.p not in (1.0, 2.0, math.inf):
            raise CertifiedError(f"property '{prop.name}': certified training bounds l_1, l_2 "
                                 f"and l_inf balls, not p = {prop.ball.p:g}")
        self.needs_fx0 = _mentions_centre_output(prop)
        self._cache: dict = {}
        # the body's shape does not depend on the centre's numbers: one dry run shows
        # whether every atom has a row
        body = self._formula(np.zeros(input_dim), 0, np.zeros(classes))
        if cert_loss == "ce" and q.has_or(body):
            raise CertifiedError(f"property '{prop.name}': its body has a disjunction; the "
                                 f"certified cross-entropy (--cert-loss ce) needs a "
                                 f"conjunction of rows; use --cert-loss logic")

    # --- the rows -----------------------------------------------------------------------
    def _formula(self, x0: np.ndarray, y: int, fx0: np.ndarray) -> q.Formula:
        key = (y, fx0.tobytes() if self.needs_fx0 else None)
        if key in self._cache:
            return self._cache[key]
        try:
            body = self.encoder.query(Centre(x0, y, fx0)).body
        except Unsupported as exc:
            raise CertifiedError(f"property '{self.prop.name}': {exc}; certified training "
                                 f"bounds linear output rows only") from None
        check_rows(body, self.prop.name)
        if not self.needs_fx0:
            self._cache[key] = body
        return body

    def lower(self, x0: torch.Tensor, y: torch.Tensor, fx0: torch.Tensor | None, *,
              eps_share: float, beta: float) -> tuple[torch.Tensor, list[q.Formula]]:
        """Lower bounds (B, K) of every centre's rows over its ball scaled by eps_share."""
        B = x0.shape[0]
        xs = x0.detach().reshape(B, -1).cpu().double().numpy()
        ys = y.detach().cpu().numpy()
        fs = fx0.detach().reshape(B, -1).cpu().double().numpy() if fx0 is not None \
            else np.zeros((B, self.m))
        formulas = [self._formula(xs[b], int(ys[b]), fs[b]) for b in range(B)]
        rows = [q.output_rows(f) for f in formulas]
        K = max((len(r) for r in rows), default=0)
        device, dtype = x0.device, x0.dtype
        if K == 0:
            return torch.zeros((B, 0), device=device, dtype=dtype), formulas
        C = np.zeros((B, K, self.m))
        d = np.ones((B, K))  # padding rows: trivially positive, never read
        for b, r in enumerate(rows):
            for i, (c, dd) in enumerate(r):
                C[b, i], d[b, i] = c, dd
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
        return lower, formulas

    # --- the loss -----------------------------------------------------------------------
    def loss(self, lower: torch.Tensor, formulas: list[q.Formula]) -> torch.Tensor:
        """The worst-case violation per centre (B,), >= 0: `cert_loss` of the body with each
        atom replaced by its row's lower bound."""
        if self.cert_loss == "ce":
            out = []
            for b, f in enumerate(formulas):
                k = len(q.output_rows(f))
                if _constant_false(f):  # the encoder folded the body to false: no rows
                    out.append(lower.new_tensor(math.log(2.0)))
                    continue
                margins = torch.cat([lower.new_zeros(1), -lower[b, :k]])
                out.append(torch.logsumexp(margins, 0))
            return torch.stack(out)
        return self._evaluate(lower, formulas, self.logic, loss=True)

    def proved(self, lower: torch.Tensor, formulas: list[q.Formula]) -> torch.Tensor:
        """Which centres the bounds prove (B,) bool: every atom needed has L > 0."""
        return self._evaluate(lower.detach(), formulas, Boolean(), loss=False)

    def _evaluate(self, lower: torch.Tensor, formulas: list[q.Formula], logic: Logic,
                  loss: bool) -> torch.Tensor:
        # centres whose formulas have one shape are evaluated together
        groups: dict[str, list[int]] = {}
        for b, f in enumerate(formulas):
            groups.setdefault(_shape(f), []).append(b)
        out: list[torch.Tensor | None] = [None] * len(formulas)
        for members in groups.values():
            idx = torch.tensor(members, device=lower.device)
            values = lower.index_select(0, idx)
            cursor = [0]
            v = _value(formulas[members[0]], values, logic, cursor)
            v = logic.loss(v) if loss else v
            v = v.expand(len(members)) if v.dim() == 0 or v.shape[0] != len(members) else v
            for j, b in enumerate(members):
                out[b] = v[j]
        return torch.stack([o for o in out if o is not None])


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


def _constant_false(f: q.Formula) -> bool:
    return isinstance(f, q.Const) and not f.value


def _mentions_centre_output(prop: ir.Property) -> bool:
    from specrob.lang.walk import mentions
    return mentions(prop.body, lambda node: node == ir.Net(True))
