"""Lipschitz properties near the centre, where Marabou cannot help.

`norm(f(x) - f(x0), q) <= L * norm(x - x0, p)` holds with equality at x = x0, and Marabou
cannot state the strict negation, so it always answers with that tie. The ball is therefore
split. Near x0, on the l_inf box of radius gamma where no ReLU/clamp kink changes side (checked
with interval bounds), the network is affine with the Jacobian J of x0, so
||f(x) - f(x0)||_q = ||J (x - x0)||_q <= ||J||_{p->q} ||x - x0||_p, and the property holds there
when ||J||_{p->q} <= L (an upper bound of the operator norm is used). The rest of the ball,
where ||x - x0||_inf >= gamma, goes to Marabou.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from specrob.network.ir import Clip, LeakyRelu, MaxPool, Network, Relu
from specrob.network.torch_exec import to_torch


def stable_radius(net: Network, x0: np.ndarray, low: float | np.ndarray,
                  high: float | np.ndarray, start: float, halvings: int = 24) -> float | None:
    """The largest gamma = start / 2^k such that every kink keeps its side on the l_inf box
    of radius gamma around x0 (∩ [low, high]); None if there is none (x0 on a kink)."""
    from specrob.bounds import compile_network, ibp_bounds, input_region
    comp = compile_network(net, torch.device("cpu"))
    kinks = [(i, node) for i, node in enumerate(net.nodes)
             if isinstance(node, (Relu, LeakyRelu, Clip, MaxPool))]
    if any(isinstance(node, MaxPool) for _, node in kinks):
        return None
    gamma = start
    for _ in range(halvings):
        bounds = ibp_bounds(comp, input_region(net, x0[None], gamma, math.inf, low, high))
        if all(_stable(node, *bounds[node.inputs[0]]) for _, node in kinks):
            return gamma
        gamma /= 2
    return None


def _stable(node, lo: torch.Tensor, hi: torch.Tensor) -> bool:
    if isinstance(node, (Relu, LeakyRelu)):
        return bool(((lo >= 0) | (hi <= 0)).all())
    for t in (node.low, node.high):  # Clip: on one side of each threshold
        if t is not None and not bool(((lo >= t) | (hi <= t)).all()):
            return False
    return True


def jacobian(net: Network, x0: np.ndarray) -> np.ndarray:
    """df/dx at x0 in float64 (m, n): on a stable box the network's exact linear part."""
    module = to_torch(net).double()
    x = torch.tensor(x0, dtype=torch.float64, device="cpu")[None]
    J = torch.autograd.functional.jacobian(lambda v: module(v)[0], x)
    return J.reshape(net.output_size, net.input_size).numpy()


def operator_norm_bound(J: np.ndarray, p: float, q: float) -> float:
    """An upper bound of max ||J v||_q / ||v||_p (exact for the l_1 / l_inf pairs but
    l_inf -> l_1, where the sum of all |J_ij| bounds it)."""
    A = np.abs(J)
    if p == math.inf and q == math.inf:
        return float(A.sum(1).max())
    if p == 1 and q == 1:
        return float(A.sum(0).max())
    if p == 1 and q == math.inf:
        return float(A.max())
    return float(A.sum())  # p = inf, q = 1
