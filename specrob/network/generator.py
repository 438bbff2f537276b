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


DECODE_ROWS = 1024  # codes per decode call (measured: see manifold_samples)


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
        codes = z.unsqueeze(0) + sigma * noise  # (count, B, latent)
        # decode calls of about DECODE_ROWS codes: several draws of a small batch at once, one
        # draw of a large one (benchmarks/bench_manifold_samples.py: one call for all 20
        # draws of 64 points takes 0.84x the CPU time of a call per draw, but 1.21x for 500
        # points, whose 10000 rows no longer fit the caches)
        per = max(1, DECODE_ROWS // max(1, z.shape[0]))
        parts = []
        for start in range(0, count, per):
            chunk = codes[start:start + per]
            out = generator.decode(chunk.reshape(-1, *z.shape[1:]))
            if out.numel() != chunk.shape[0] * x0.numel():
                raise GeneratorError(f"the generator's decode returned {tuple(out.shape)} for "
                                     f"{chunk.shape[0] * x0.shape[0]} codes; expected rows of "
                                     f"{x0.shape[-1]} values (the inputs' size)")
            parts.append(out.reshape(chunk.shape[0], *x0.shape))
    return torch.cat(parts)
