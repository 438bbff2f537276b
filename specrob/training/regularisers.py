"""Penalties and weight maps of the robustness-regularised training methods the seed papers
compare against (one function each; `training.regimes` turns them into regimes):

- `cross_lipschitz`: Hein & Andriushchenko (NeurIPS 2017), the HEIN column of Tibo et al.'s
  Table 1 (seed 001, section 4).
- `parseval_retraction`: Cisse et al. (ICML 2017), Parseval networks, as Lassance et al.'s
  released code applies it (seed 004, "P").
- `laplacian_smoothness` / `smoothness_change`: Lassance et al.'s Laplacian networks (seed 004,
  "L"; their released `gsp.py`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def cross_lipschitz(logits: torch.Tensor, x: torch.Tensor, *, batched: bool = True
                    ) -> torch.Tensor:
    """Hein & Andriushchenko's Cross-Lipschitz regulariser of a batch,

        Omega = 1 / (n K^2) * sum_i sum_{l,m} ||grad_x f_l(x_i) - grad_x f_m(x_i)||_2^2,

    differentiable in the weights (double backpropagation). Computed through the identity
    sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l||^2 - 2 ||sum_l g_l||^2 from the K per-class
    input gradients: one vmapped backward pass (`is_grads_batched`), or K passes where
    `batched` is False or the network has an operator torch cannot vmap. Which is faster
    depends on the network (benchmarks/bench_cross_lipschitz.py, CPU: the vmapped pass takes
    0.68x the time of K passes for a 784-256-256-10 MLP, 1.7x for a two-layer convnet).

    Shape: logits (n, K), computed from x (n, ...) with x.requires_grad; returns a scalar.
    Raises ValueError when x does not require gradients.
    Source: Hein & Andriushchenko, "Formal guarantees on the robustness of a classifier
    against adversarial manipulation", NeurIPS 2017, eq. (7); their released code normalises
    by n K^2 as here."""
    if not x.requires_grad:
        raise ValueError("cross_lipschitz needs the logits' input with requires_grad")
    n, k = logits.shape
    grads = None
    if batched:
        eye = torch.eye(k, dtype=logits.dtype, device=logits.device)
        try:
            (grads,) = torch.autograd.grad(logits, x, grad_outputs=eye[:, None, :].expand(k, n, k),
                                           is_grads_batched=True, create_graph=True)
        except RuntimeError:  # an operator without a batching rule: one pass per class
            grads = None
    if grads is None:
        grads = torch.stack([torch.autograd.grad(logits[:, cls].sum(), x, create_graph=True)[0]
                             for cls in range(k)])
    grads = grads.reshape(k, n, -1)
    squares = (grads ** 2).sum()
    total = (grads.sum(0) ** 2).sum()
    return (2 * k * squares - 2 * total) / (n * k * k)


@torch.no_grad()
def parseval_retraction(model: nn.Module, beta: float) -> None:
    """One Parseval retraction step on every weight with two or more axes (linear and
    convolution kernels, flattened to (out, -1)): W <- (1 + beta) W - beta W W^T W, which moves
    W towards a Parseval tight frame (W W^T = I, so ||W||_2 <= 1). Runs after each optimiser
    step. In place.

    Source: Cisse et al., "Parseval networks", ICML 2017, eq. (4); Lassance et al.'s released
    code (cadurosar/laplacian_networks, cifar10.py `do_parseval`, beta = 0.01) applies it to
    every parameter with two or more axes, as here."""
    for w in model.parameters():
        if w.dim() < 2:
            continue
        flat = w.reshape(w.shape[0], -1)
        w.copy_(((1 + beta) * flat - beta * flat @ flat.T @ flat).reshape(w.shape))


def laplacian_smoothness(h: torch.Tensor, y: torch.Tensor, classes: int, power: int = 1
                         ) -> torch.Tensor:
    """The smoothness of the class indicator signal on the batch's similarity graph at one
    layer: tr(Y^T L^m Y), L = D - W the Laplacian of the complete graph whose weights W are the
    cosine similarities of the representations h, Y the one-hot labels, m = power. For m = 1
    this is the total similarity between points of different classes,
    sum_{i,j: y_i != y_j} W_ij.

    Shape: h (n, ...) one layer's activations, y (n,) class indices; returns a scalar.
    Source: Lassance et al., "Laplacian networks", 2018 (seed 004's [20]); their released
    `gsp.laplacian` (cosine distance, all neighbours)."""
    flat = F.normalize(h.reshape(h.shape[0], -1), p=2, dim=1)
    w = flat @ flat.T
    lap = torch.diag(w.sum(1)) - w
    lap_m = torch.linalg.matrix_power(lap, power)
    onehot = F.one_hot(y, classes).to(h.dtype)
    return torch.trace(onehot.T @ lap_m @ onehot)


def smoothness_change(activations: list[torch.Tensor], y: torch.Tensor, classes: int,
                      power: int = 1) -> torch.Tensor:
    """Mean absolute change of `laplacian_smoothness` between consecutive layers:
    1/(L-1) sum_l |s_l - s_{l-1}| (Lassance et al.'s regulariser keeps the distances between
    classes from changing abruptly from layer to layer).

    Shape: activations, L >= 2 tensors (n, ...); y (n,); returns a scalar.
    Raises ValueError with fewer than 2 layers.
    Source: Lassance et al.'s released `gsp.force_smooth_network`."""
    if len(activations) < 2:
        raise ValueError(f"the Laplacian regulariser compares consecutive layers: it needs at "
                         f"least 2 ReLU activations, the network has {len(activations)}")
    s = [laplacian_smoothness(h, y, classes, power) for h in activations]
    return torch.stack([torch.abs(b - a) for a, b in zip(s, s[1:])]).mean()
