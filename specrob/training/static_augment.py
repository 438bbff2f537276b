"""Static data augmentation: points made once, before training, and appended to the training
set (Casadio et al.'s released procedures, seed 003; their text describes augmentation without
saying the points are fixed). The regime `augmentation` with `augment` static-fgsm or
random-walk trains on the extended set with plain cross-entropy; the points are cached in the
run folder (augmented.pt) so a resumed run trains on the same ones.

- static-fgsm: FGSM points x + e·sign(∇_x CE(g(x), y)) clamped into the domain, for e = eps/2
  and e = eps of the property's ball (the authors: 0.05 and 0.1), computed once against a
  trained reference network g (`TrainConfig.reference`, an ONNX file) and kept only where
  they fool it.
- random-walk: per training point a random walk of single-coordinate steps, each a uniform
  draw in [-eps, eps] added to a uniformly chosen coordinate and clamped into the domain, until
  the l_2 distance from the point exceeds eps (the authors: pixel steps of up to 0.1 until the
  l_2 distance passes 0.1).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

STATIC = ("static-fgsm", "random-walk")


def fgsm_points(reference: nn.Module, x: torch.Tensor, y: torch.Tensor,
                radii: tuple[float, ...], low: float, high: float, *, batch: int = 4096
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The FGSM points of x (N, n) at each radius that `reference` misclassifies, with their
    labels: shapes (K, n), (K,), K <= len(radii)·N, radius by radius in the order of x."""
    was = reference.training
    reference.eval()
    points, labels = [], []
    try:
        for r in radii:
            for start in range(0, len(y), batch):
                xb = x[start:start + batch].detach().clone().requires_grad_(True)
                yb = y[start:start + batch]
                with torch.enable_grad():
                    loss = F.cross_entropy(reference(xb), yb, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, xb)
                adv = (xb.detach() + r * grad.sign()).clamp(low, high)
                with torch.no_grad():
                    fooled = reference(adv).argmax(-1) != yb
                points.append(adv[fooled])
                labels.append(yb[fooled])
    finally:
        reference.train(was)
    if not points:
        return x[:0], y[:0]
    return torch.cat(points), torch.cat(labels)


def random_walk_points(x: torch.Tensor, step: float, distance: float, low: float, high: float,
                       generator: torch.Generator, *, max_steps: int = 100_000) -> torch.Tensor:
    """One random walk per row of x (N, n): single-coordinate steps uniform in [-step, step],
    clamped into [low, high], until ||x' - x||_2 > distance (rows that never get there, e.g.
    a zero step, stop after `max_steps`). Random numbers from `generator` (on its device)."""
    out = x.detach().clone()
    n = x.shape[-1]
    sq = torch.zeros(len(x), dtype=x.dtype, device=x.device)  # ||x' - x||^2 per row
    active = torch.arange(len(x), device=x.device)
    dev = generator.device
    for _ in range(max_steps):
        if len(active) == 0:
            break
        i = torch.randint(0, n, (len(active),), generator=generator, device=dev).to(x.device)
        u = torch.rand(len(active), generator=generator, dtype=x.dtype, device=dev).to(x.device)
        old = out[active, i]
        new = (old + (2 * u - 1) * step).clamp(low, high)
        base = x[active, i]
        out[active, i] = new
        sq[active] += (new - base) ** 2 - (old - base) ** 2
        active = active[sq[active] <= distance ** 2]
    return out


def static_points(kind: str, x: torch.Tensor, y: torch.Tensor, *, eps: float, low: float,
                  high: float, seed: int, reference: nn.Module | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The static points of `kind` (see the module's docstring) for the training set x, y.
    Raises ValueError for static-fgsm without a reference network."""
    if kind == "static-fgsm":
        if reference is None:
            raise ValueError("--augment static-fgsm computes its points against a trained "
                             "network: give it with --reference MODEL.onnx (e.g. a baseline's)")
        return fgsm_points(reference, x, y, (eps / 2, eps), low, high)
    from specrob.numerics import generator
    walks = random_walk_points(x, eps, eps, low, high, generator(seed, x.device))
    return walks, y.clone()


def load_reference(path: str | Path, device: torch.device) -> nn.Module:
    """The reference network of static-fgsm: an ONNX file executed in torch (checked against
    onnxruntime), float32, on `device`. Raises NetworkError."""
    from specrob.network import load_onnx_checked
    _, module = load_onnx_checked(Path(path))
    return module.float().to(device).eval()
