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


def build_model(path: str | Path, input_dim: int, classes: int, **options) -> nn.Module:
    """The network of a model file: its `build(input_dim, classes, ...)` (it may take any of
    these; `options` are passed by name, e.g. hidden=64 for examples/mlp_two_hidden.py).
    Raises ModelFileError for a file without build(), an option build() does not take, a
    build() that fails or returns something other than a torch.nn.Module."""
    module = load_module(path)
    if not callable(getattr(module, "build", None)):
        raise ModelFileError(f"{path}: defines no build() function",)
    params = inspect.signature(module.build).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise ModelFileError(f"{path}: build() takes no {', '.join(unknown)}")
    return _call(module.build, path, "build", input_dim=input_dim, classes=classes, **options)


def build_generator(path: str | Path, input_dim: int) -> nn.Module | None:
    module = load_module(path)
    fn = getattr(module, "generator", None)
    return _call(fn, path, "generator", input_dim=input_dim) if callable(fn) else None


def adapt_to_data(net: nn.Module, shape: tuple[int, ...], classes: int) -> nn.Module:
    """specrob feeds models flat (B, n) points. A model written for images, (B, C, H, W) or
    (B, *shape), gets a forward pre-hook that reshapes its input (its weights and state dict
    are unchanged, and the ONNX export records the reshape). Tried in order: flat, then
    (B, 1, *shape) for 2-D data (a channel axis), then (B, *shape); the first whose output is
    (B, classes) wins. Returns `net` (hooked or not)."""
    import torch

    from specrob.numerics import module_device
    n = 1
    for d in shape:
        n *= int(d)

    def works(x) -> bool:
        try:
            with torch.no_grad():
                out = net(x)
            return tuple(out.shape) == (2, classes)
        except Exception:  # noqa: BLE001 - the model rejects this layout; try the next
            return False

    was_training = net.training
    net.eval()
    # probes on the network's device (a module the caller already moved to a GPU)
    device = module_device(net)
    try:
        if works(torch.zeros(2, n, device=device)):
            return net
        for layout in ([(1, *shape)] if len(shape) == 2 else []) + [tuple(shape)]:
            if len(layout) > 1 and works(torch.zeros(2, *layout, device=device)):
                net.register_forward_pre_hook(
                    lambda module, args, layout=layout: (
                        args[0].reshape(args[0].shape[0], *layout), *args[1:])
                    if args[0].dim() == 2 else None)
                return net
        return net  # the caller's check reports the failure on flat inputs
    finally:
        net.train(was_training)

