"""Generators of on-manifold samples (Tibo, Jaeger and Larsen, seed 000, section 4.2).

A generator is a Python module of the user's that defines `encode(x)` and `decode(z)` (torch
functions on flat rows), or `load()` returning an object with both (an autoencoder module, for
instance the one `specrob.training.autoencoder` trains and saves). The on-manifold kernel of
eq. 13 draws dec(enc(x) + N(0, sigma^2)) around each point x. Both the estimators of the
Q,H,G scores (`specrob.estimate.scores`) and the R4 training regime use it, so it sits with
the networks, below both.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from specrob.errors import SpecrobError
from specrob.numerics import draw_device


class GeneratorError(SpecrobError):
    """A generator module that cannot be used: missing, not Python, failing, or without
    encode/decode."""


def load_generator(path: str | Path) -> Any:
    """The generator of the module at `path`: the module itself when it defines encode(x) and
    decode(z), else what its load() returns. An object that is an nn.Module is put in eval
    mode (its samples do not depend on a batch).

    Raises GeneratorError with the path and the fix."""
    p = Path(path)
    if not p.is_file():
        raise GeneratorError(f"generator module '{path}' not found (give it with "
                             f"--set generator=PATH.py, or --generator PATH.py when training)")
    spec = importlib.util.spec_from_file_location(f"specrob_generator_{abs(hash(p))}", p)
    if spec is None or spec.loader is None:  # a file without a Python suffix
        raise GeneratorError(f"generator module '{path}' is not a Python file (.py); give it "
                             f"with --set generator=PATH.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        target = module.load() if callable(getattr(module, "load", None)) else module
    except Exception as exc:  # the user's code: report where, do not crash
        raise GeneratorError(f"{path}: loading the generator failed: "
                             f"{type(exc).__name__}: {exc}") from exc
    if not (callable(getattr(target, "encode", None)) and callable(getattr(target, "decode", None))):
        raise GeneratorError(f"{path}: a generator defines encode(x) and decode(z) (or load() "
                             f"returning an object with both)")
    if isinstance(target, nn.Module):
        target.eval()
    return target


def manifold_samples(generator: Any, x0: torch.Tensor, sigma: float, count: int,
                     gen: torch.Generator | None = None) -> torch.Tensor:
    """`count` draws of dec(enc(x0) + N(0, sigma^2 I)) per row of x0 (seed 000, eq. 13),
    without gradients.

    Shape: x0 (B, n) -> (count, B, n). The generator's modules are moved to x0's device.
    Raises GeneratorError when decode's output does not have x0's shape."""
    if isinstance(generator, nn.Module):
        generator.to(x0.device)
    generator = cast(Any, generator)  # typed by its protocol (encode/decode) only
    with torch.no_grad():
        z = generator.encode(x0)
        noise = torch.randn((count, *z.shape), generator=gen, dtype=z.dtype,
                            device=draw_device(gen, z)).to(z.device)
        # one decode call for all draws (B rows each): the draws of one row are independent
        pts = generator.decode((z.unsqueeze(0) + sigma * noise).reshape(-1, *z.shape[1:]))
    if pts.numel() != count * x0.numel():
        raise GeneratorError(f"the generator's decode returned {tuple(pts.shape)} for "
                             f"{count * x0.shape[0]} codes; expected rows of {x0.shape[-1]} "
                             f"values (the inputs' size)")
    return pts.reshape(count, *x0.shape)
