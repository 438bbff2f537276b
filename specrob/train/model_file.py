"""`model.py` files: a user's network, built by their `build()` function.

A model file defines `build()` returning a `torch.nn.Module` that maps flattened inputs
(B, n) in the spec's input domain to logits (B, m). Optional: `build` may take the keyword
arguments `input_dim` and `classes` (passed when it accepts them); `generator(input_dim)`
returns the adversarial generator g of the co-training regime.
"""
from __future__ import annotations

from specrob.errors import SpecrobError

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

from torch import nn


class ModelFileError(SpecrobError):
    """A model file that cannot be used; the message names the file and the fix."""


def load_module(path: str | Path):
    p = Path(path)
    if p.is_dir() or not p.exists():
        raise ModelFileError(f"{path}: no such model file (a .py file defining build())")
    name = "specrob_model_" + hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report, do not crash
        raise ModelFileError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return module


def _call(fn, path, what: str, **available) -> nn.Module:
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in available.items() if k in params}
    try:
        module = fn(**kwargs)
    except Exception as exc:
        raise ModelFileError(f"{path}: {what}() failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelFileError(f"{path}: {what}() must return a torch.nn.Module, "
                             f"not {type(module).__name__}")
    return module


def build_model(path: str | Path, input_dim: int, classes: int) -> nn.Module:
    module = load_module(path)
    if not callable(getattr(module, "build", None)):
        raise ModelFileError(f"{path}: defines no build() function",)
    return _call(module.build, path, "build", input_dim=input_dim, classes=classes)


def build_generator(path: str | Path, input_dim: int) -> nn.Module | None:
    module = load_module(path)
    fn = getattr(module, "generator", None)
    return _call(fn, path, "generator", input_dim=input_dim) if callable(fn) else None
