"""Interval bound propagation and CROWN / alpha-CROWN (Gowal et al. 2018; Zhang et al. 2018;
Xu et al. 2021): intermediate bounds in topological order, then lower bounds of linear
functions of any value by backward propagation through the DAG.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import Tensor

from specrob.network.ir import (Network)
from specrob.bounds.common import DTYPE, Interval, down, up
from specrob.bounds.network import CompiledNetwork, compile_network
from specrob.bounds.region import BoundRegion, input_region

if TYPE_CHECKING:
    from specrob.bounds.operators.relu import KinkOp


def interval_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor,
                    *, p: float, low, high) -> dict[str, Interval]:
    """IBP bounds (lower, upper), each (B, *shape), of the input and of every value the output
    depends on, over B_p(centre, eps) ∩ [low, high]^n. Raises ValueError for an empty set."""
    region = input_region(net, centres, eps, p, low, high)
    with torch.no_grad():
        return ibp_bounds(compile_network(net, region.x0.device), region)


def ibp_bounds(comp: CompiledNetwork, region: BoundRegion) -> dict[str, Interval]:
    """Interval bounds of every live value (Gowal et al. 2018), from the enclosing box."""
    B, shape = region.x0.shape[0], tuple(comp.input_shape)
    bounds = {comp.input_name: (region.box_low.reshape(B, *shape),
                                    region.box_high.reshape(B, *shape))}
    for i in comp.live:
        op = comp.ops[i]
        bounds[op.node.output] = op.interval([bounds[v] for v in op.node.inputs])
    return bounds


class Crown:
    """CROWN (Zhang et al. 2018) on one batch: intermediate bounds in topological order, then
    lower bounds of linear functions of any value by backward propagation through the DAG.

    `ibp` holds the bounds every value is intersected with (interval bounds, or the bounds of
    an earlier, looser pass). With `alpha_steps` > 0 the intermediate bounds are alpha-CROWN's
    (Xu et al. 2021): each value's bounds with lower ReLU slopes optimised for it (per bounded
    neuron, over the relaxations of the values before it, which are already final)."""

    alpha_steps, alpha_lr = 0, 0.1

    def __init__(self, comp: CompiledNetwork, region: BoundRegion, ibp: dict[str, Interval],
                 chunk_elements: int, alpha_steps: int = 0, alpha_lr: float = 0.1,
                 refine: bool = True):
        """`refine=False`: the intermediate bounds are `ibp`'s as given, only the final
        backward pass is CROWN's (CROWN-IBP, Zhang et al. 2020: cheap enough to train with)."""
        self.comp, self.region, self.chunk = comp, region, chunk_elements
        self.alpha_steps, self.alpha_lr = alpha_steps, alpha_lr
        self.B = region.x0.shape[0]
        self.bounds: dict[str, Interval] = {comp.input_name: ibp[comp.input_name]}
        self.relax: dict[int, list | tuple] = {}  # per kink or relaxed node: its relaxation
        for i in comp.live:
            op = comp.ops[i]
            if op.kind == "softmax":
                raise NotImplementedError(
                    f"{comp.source}: CROWN has no linear relaxation of Softmax node "
                    f"'{op.node.name}'; bound the logits before the softmax, or use "
                    f"method='ibp'")
            if op.kind in ("kink", "relaxed"):
                self.relax[i] = op.relaxation(*self.bounds[op.node.inputs[0]])
            if not refine:
                self.bounds[op.node.output] = ibp[op.node.output]
                continue
            # IBP from the (tightened) inputs, intersected with plain IBP
            l, u = op.interval([self.bounds[v] for v in op.node.inputs])
            pl, pu = ibp[op.node.output]
            l, u = torch.maximum(l, pl), torch.minimum(u, pu)
            self.bounds[op.node.output] = self._refine(op.node.output, l, u)

    def _refine(self, value: str, l: Tensor, u: Tensor) -> Interval:
        """Tighten the bounds of a value read by a nonlinear node with CROWN, on the neurons
        where it matters (unstable ReLU terms for any centre; all for the other nonlinear
        nodes); with alpha_steps, by alpha-CROWN."""
        users = [self.comp.ops[i] for i in self.comp.consumers.get(value, ())]
        users = [op for op in users if op.kind != "linear"]
        if not users:
            return l, u
        if any(op.kind != "kink" for op in users):
            mask = (l < u).reshape(self.B, -1)
        else:
            mask = torch.zeros((self.B, l[0].numel()), dtype=torch.bool, device=l.device)
            for op in users:  # all kinks
                mask |= cast("KinkOp", op).unstable(l, u).reshape(self.B, -1)
        # rows for the neurons some centre needs; each centre takes only its own, so a
        # centre's bounds do not depend on the other centres of the batch
        rows = mask.any(0).nonzero().squeeze(-1)
        if rows.numel() == 0:
            return l, u
        l, u = l.reshape(self.B, -1).clone(), u.reshape(self.B, -1).clone()
        N, shape = l.shape[1], self.comp.shapes[value]
        step = max(1, self.chunk // (2 * self.B * self.comp.max_size))
        for start in range(0, rows.numel(), step):
            idx = rows[start:start + step]
            k = idx.numel()
            # one-hot rows +e_i (lower bounds) and -e_i (minus upper bounds), shared by the
            # batch (batch axis 1: linear nodes keep it so until the first relaxation)
            A = torch.zeros((1, 2 * k, N), dtype=l.dtype, device=l.device)
            ar = torch.arange(k, device=l.device)
            A[0, ar, idx], A[0, k + ar, idx] = 1.0, -1.0
            zero = torch.zeros((1, 2 * k), dtype=l.dtype, device=l.device)
            A = A.reshape(1, 2 * k, *shape)
            if self.alpha_steps > 0:
                lower = self.lower(value, A, zero, alpha=True, steps=self.alpha_steps,
                                   lr=self.alpha_lr)
            else:
                lower = self.backward(value, A, zero)
            use = mask[:, idx]
            l[:, idx] = torch.where(use, torch.maximum(l[:, idx], down(lower[:, :k])), l[:, idx])
            u[:, idx] = torch.where(use, torch.minimum(u[:, idx], up(-lower[:, k:])), u[:, idx])
        return l.reshape(self.B, *shape), u.reshape(self.B, *shape)

    def backward(self, value: str, A: Tensor, c: Tensor,
                 alphas: dict[int, list[Tensor | None]] | None = None,
                 betas: dict[int, Tensor] | None = None, keep: dict | None = None) -> Tensor:
        """A lower bound (B, K) of A · value + c over the input set (before the safety margin):
        coefficients flow backwards node by node, summed where a value has several readers.

        `betas` (branch and bound, Wang et al. 2021): per ReLU node, a term added to the
        coefficient of its pre-activation z (the Lagrangian beta s z of a split constraint
        s z <= 0, which only lowers the bound on the subdomain). `keep`, when given, receives
        the coefficient of each kink node's output (by node index) and of the input ("input")."""
        comp = self.comp
        coef = {value: A}
        for i in reversed([j for j in comp.live if j <= comp.producer.get(value, -1)]):
            op = comp.ops[i]
            coef_out = coef.pop(op.node.output, None)
            if coef_out is None:
                continue
            A = coef_out
            if op.kind == "linear":
                extra = op.const(A)
                if extra is not None:
                    c = c + extra
                ins = op.back(A)
            elif op.kind == "kink":
                if keep is not None:
                    keep[i] = A
                Az, extra = op.back_relaxed(A, self.relax[i], None if alphas is None
                                            else alphas.get(i))
                if betas is not None and i in betas:
                    Az = Az + betas[i]
                c, ins = c + extra, [Az]
            else:  # relaxed: a lower and an upper linear bound (Sigmoid, Tanh, MaxPool)
                Az, extra = op.back_relaxed(A, self.relax[i])
                c, ins = c + extra, [Az]
            for v, Av in zip(op.node.inputs, ins):
                coef[v] = coef[v] + Av if v in coef else Av
        if keep is not None:
            keep["input"] = coef.get(comp.input_name)
        return self.region.concretise(coef.pop(comp.input_name, None), c)

    def alphas_for(self, K: int) -> dict[int, list[Tensor | None]]:
        """Free lower slopes (B, K, *shape) per ReLU term with unstable neurons, started at
        CROWN's heuristic (one set per specification row, as in Xu et al. 2021)."""
        out = {}
        for i, relax in self.relax.items():
            if self.comp.ops[i].kind != "kink":
                continue
            out[i] = [alpha.unsqueeze(1).expand(self.B, K, *alpha.shape[1:]).clone()
                      .requires_grad_(True) if bool(unstable.any()) else None
                      for _, _, alpha, unstable in relax]
        return out

    def lower(self, value: str, A: Tensor, c: Tensor, *, alpha: bool, steps: int,
              lr: float) -> Tensor:
        """CROWN's lower bound of A · value + c (A: (B or 1, K, *shape)); with `alpha`,
        alpha-CROWN (Xu et al. 2021): Adam ascent on the lower slopes, projected onto [0, 1]
        (every slope there is a valid lower relaxation), keeping per row the best bound."""
        K = A.shape[1]
        step = max(1, self.chunk // (self.B * self.comp.max_size))
        parts = []
        for start in range(0, K, step):
            Ak, ck = A[:, start:start + step], c[:, start:start + step]
            with torch.no_grad():
                best = self.backward(value, Ak, ck)
            if alpha and steps > 0 and self.relax:
                alphas = self.alphas_for(Ak.shape[1])
                params = [a for group in alphas.values() for a in group if a is not None]
                if not params:
                    parts.append(best)
                    continue
                # Adam by hand (torch.optim imports torch._dynamo: seconds per process); rows
                # are independent, so ascending their sum ascends each row's bound
                moments = [(torch.zeros_like(a), torch.zeros_like(a)) for a in params]
                for it in range(steps + 1):
                    with torch.enable_grad():
                        bound = self.backward(value, Ak, ck, alphas)
                        best = torch.maximum(best, bound.detach())
                        if it == steps:
                            break
                        grads = torch.autograd.grad(bound.sum(), params, allow_unused=True)
                    adam_ascent(params, grads, moments, it, lr)
                    with torch.no_grad():
                        for a in params:
                            a.clamp_(0.0, 1.0)  # every slope in [0, 1] is a valid relaxation
            parts.append(best.detach())
        return torch.cat(parts, 1)


def adam_ascent(params: list[Tensor], grads, moments: list[tuple[Tensor, Tensor]], it: int,
                lr: float) -> None:
    """One Adam step of gradient *ascent* on `params` in place (Kingma & Ba 2015; written
    out because importing torch.optim costs seconds per process through torch._dynamo).
    `moments` holds each parameter's (first, second) moment; `it` counts from 0; parameters
    without a gradient are left alone. The caller projects onto the feasible set."""
    with torch.no_grad():
        for p, g, (m1, m2) in zip(params, grads, moments):
            if g is None:
                continue
            m1.mul_(0.9).add_(g, alpha=0.1)
            m2.mul_(0.999).addcmul_(g, g, value=0.001)
            hat1, hat2 = m1 / (1 - 0.9 ** (it + 1)), m2 / (1 - 0.999 ** (it + 1))
            p.add_(lr * hat1 / (hat2.sqrt() + 1e-8))


def relaxations(comp: CompiledNetwork, bounds: dict[str, Interval]) -> dict[int, list | tuple]:
    """The relaxation of every live nonlinear node (kink or relaxed) from its input bounds,
    as `Crown.relax` holds them (for a `Crown` built on given bounds, e.g. by branch and
    bound)."""
    return {i: comp.ops[i].relaxation(*bounds[comp.ops[i].node.inputs[0]])
            for i in comp.live if comp.ops[i].kind in ("kink", "relaxed")}
