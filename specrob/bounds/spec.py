"""The bounds API: lower bounds of linear specifications C f(x) + d over the input set, by a
method of METHODS; which nodes a method supports.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import Tensor

from specrob.network.ir import (Network, Softmax)
from specrob.bounds.common import METHODS, DTYPE, down, pos_neg
from specrob.bounds.operators import OPS
from specrob.bounds.crown import Crown, ibp_bounds
from specrob.bounds.network import CompiledNetwork, compile_network
from specrob.bounds.region import BoundRegion, input_region


def unsupported(net: Network, method: str) -> tuple[str, ...]:
    """The nodes (as "Kind 'name'") `method` cannot bound: for the CROWN methods Softmax,
    which they refuse (no linear relaxation); for every method the nodes no method bounds
    (LogSoftmax), on which bounds raise NotImplementedError."""
    method = _method(method)
    unknown = tuple(f"{type(n).__name__} '{n.name}'" for n in net.nodes if type(n) not in OPS)
    if unknown:  # no bounds at all (e.g. LogSoftmax): output_bounds raises NotImplementedError
        return unknown
    if method == "ibp":
        return ()
    comp = compile_network(net, torch.device("cpu"))
    return tuple(f"{type(net.nodes[i]).__name__} '{net.nodes[i].name}'" for i in comp.live
                 if isinstance(net.nodes[i], Softmax))


def supports(net: Network, method: str) -> bool:
    """Whether `method` bounds every node of the network (IBP always does on the IR's nodes
    but LogSoftmax; the CROWN methods also reject Softmax)."""
    return not unsupported(net, method)


def _method(method: str) -> str:
    m = str(method).lower().replace("_", "-")
    if m not in METHODS:
        raise ValueError(f"unknown bound method {method!r}; expected one of {', '.join(METHODS)}")
    return m


def spec_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor, *,
                p: float, low, high, C: np.ndarray | Tensor,
                d: np.ndarray | Tensor | None = None, method: str = "crown",
                alpha_steps: int = 20, alpha_lr: float = 0.1, strict: bool = False,
                chunk_elements: int = 1 << 22) -> Tensor:
    """Sound lower bounds (B, K) of C f(x) + d over B_p(centre, eps) ∩ [low, high]^n, per
    centre and row: C is (B, K, m) or (K, m), d (B, K), (K,) or None.

    `method` is "ibp", "crown", "alpha-crown" or "alpha-crown-all" (each never looser than
    the previous); `alpha_steps` and `alpha_lr` are the optimisation's, for the final rows and
    (alpha-crown-all) for every intermediate bound. With `strict`, the CROWN methods raise
    NotImplementedError on nodes they cannot relax (see `unsupported`; Softmax raises without
    it too). `chunk_elements` caps the size of the coefficient tensors."""
    method = _method(method)
    if method != "ibp" and strict and unsupported(net, method):
        raise NotImplementedError(f"{net.source}: {method} has no linear relaxation of "
                                  f"{', '.join(unsupported(net, method))}")
    region = input_region(net, centres, eps, p, low, high)
    B, m, device = region.x0.shape[0], net.output_size, region.x0.device
    C = torch.as_tensor(C, dtype=DTYPE, device=device).detach()
    if C.dim() == 2:
        C = C.unsqueeze(0)
    if C.dim() != 3 or C.shape[0] not in (1, B) or C.shape[2] != m:
        raise ValueError(f"C must be (B, K, m) or (K, m) with B = {B}, m = {m}; got "
                         f"{tuple(C.shape)}")
    K = C.shape[1]
    d = torch.zeros(K, dtype=DTYPE, device=device) if d is None else \
        torch.as_tensor(d, dtype=DTYPE, device=device).detach()
    d = d.expand(B, K) if d.shape in ((K,), (1, K), (B, K)) else None
    if d is None:
        raise ValueError(f"d must be (B, K) or (K,) with B = {B}, K = {K}")
    comp = compile_network(net, device)
    # batches small enough that a few rows of coefficients fit in chunk_elements
    size = max(1, chunk_elements // (16 * comp.max_size))
    parts = []
    for start in range(0, B, size):
        rows = slice(start, start + size)
        part = region.part(rows)
        Cb = C if C.shape[0] == 1 else C[rows]
        parts.append(_spec_lower(comp, part, Cb, d[rows], method, alpha_steps, alpha_lr,
                                 chunk_elements))
    return torch.cat(parts, 0)


def _spec_lower(comp: CompiledNetwork, region: BoundRegion, C: Tensor, d: Tensor, method: str,
                steps: int, lr: float, chunk: int) -> Tensor:
    """spec_bounds on one batch."""
    B, out = region.x0.shape[0], comp.output_name
    with torch.no_grad():
        ibp = ibp_bounds(comp, region)
        if method == "ibp":
            l, u = (x.reshape(B, -1) for x in ibp[out])
            return down(interval_spec(C, l, u) + d)
        crown = Crown(comp, region, ibp, chunk)
    A = C.reshape(C.shape[0], C.shape[1], *comp.output_shape)
    lower = crown.lower(out, A, d, alpha=method != "crown", steps=steps, lr=lr)
    if method == "alpha-crown-all" and steps > 0:
        # intermediate bounds by alpha-CROWN too, each intersected with CROWN's; the final
        # bound is the better of the two passes, so never looser than alpha-crown's
        with torch.no_grad():
            crown = Crown(comp, region, crown.bounds, chunk, alpha_steps=steps, alpha_lr=lr)
        lower = torch.maximum(lower, crown.lower(out, A, d, alpha=True, steps=steps, lr=lr))
    with torch.no_grad():
        l, u = (x.reshape(B, -1) for x in crown.bounds[out])
        interval = interval_spec(C, l, u) + d
    # never looser than the interval bound of the (tightened) output
    return down(torch.maximum(lower, interval))


def interval_spec(C: Tensor, l: Tensor, u: Tensor) -> Tensor:
    """IBP's lower bound of C z over l <= z <= u: (B, K) from C (B or 1, K, m), l and u
    (B, m)."""
    Cp, Cn = pos_neg(C)
    return (Cp @ l.unsqueeze(-1) + Cn @ u.unsqueeze(-1)).squeeze(-1)


def output_bounds(net: Network, centres: np.ndarray | Tensor, eps: float | np.ndarray | Tensor,
                  *, p: float, low, high, method: str = "crown",
                  alpha_steps: int = 20, alpha_lr: float = 0.1, strict: bool = False,
                  chunk_elements: int = 1 << 22) -> tuple[Tensor, Tensor]:
    """Sound (lower, upper) bounds, each (B, m), of the outputs over
    B_p(centre, eps) ∩ [low, high]^n: spec_bounds with the rows +e_i and -e_i."""
    method = _method(method)
    m = net.output_size
    region = input_region(net, centres, eps, p, low, high)
    with torch.no_grad():
        l, u = ibp_bounds(compile_network(net, region.x0.device), region)[net.output_name]
    l, u = l.reshape(-1, m), u.reshape(-1, m)
    if method == "ibp":
        return l, u
    eye = torch.eye(m, dtype=DTYPE)
    both = spec_bounds(net, centres, eps, p=p, low=low, high=high, C=torch.cat([eye, -eye]),
                       method=method, alpha_steps=alpha_steps, alpha_lr=alpha_lr, strict=strict,
                       chunk_elements=chunk_elements)
    # intersected with IBP's own interval, so never looser than it (not even by the margin)
    return torch.maximum(both[:, :m], l), torch.minimum(-both[:, m:], u)
