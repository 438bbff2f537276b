"""Numerics shared by every layer, defined once: l_p norms and roots whose plain torch versions
have infinite derivatives at 0 (sqrt, p-th roots, which would turn gradients into NaN), the
name of a norm, and a batched count of correct predictions."""
from __future__ import annotations

import math

import torch

TINY = 1e-12


def safe_root(s: torch.Tensor, p: float) -> torch.Tensor:
    """s ** (1/p) for s >= 0, with gradient 0 instead of infinity at s = 0."""
    return torch.where(s > 0, s.clamp_min(TINY) ** (1.0 / p), torch.zeros_like(s))


def safe_l2(v: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """||v||_2 along `dim`, with gradient 0 at v = 0."""
    return safe_root((v * v).sum(dim), 2.0)


def norm(v: torch.Tensor, p: float, *, safe: bool = True) -> torch.Tensor:
    """||v||_p along the last axis, p in {1, 2, inf}; `safe`: with a finite gradient at v = 0
    (for losses and searches); otherwise torch's own l_2 norm (distances that are never
    differentiated, e.g. the margins of `estimate.margins`)."""
    if p == math.inf:
        return v.abs().amax(-1)
    if p == 1:
        return v.abs().sum(-1)
    return safe_l2(v) if safe else v.norm(dim=-1)


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters (else buffers) live; the CPU for a module without any."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device` seeded with `seed`: random draws happen where the data
    is (on the CPU the numbers of `torch.Generator().manual_seed(seed)`)."""
    return torch.Generator(device=torch.device(device)).manual_seed(seed)


def draw_device(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    """Where to draw random numbers for a tensor like `like`: on the generator's device (a
    draw must happen there), else on `like`'s."""
    return generator.device if generator is not None else like.device


def norm_name(p: float) -> str:
    """"1", "2" or "inf": how results and pages name the norm p."""
    return "inf" if math.isinf(p) else str(int(p))


def correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 4096) -> int:
    """How many rows of x (N, ...) the model classifies as y (N,), in batches of `batch`
    rows, without gradients."""
    with torch.no_grad():
        return sum(int((model(x[i:i + batch]).argmax(-1) == y[i:i + batch]).sum())
                   for i in range(0, len(y), batch))
