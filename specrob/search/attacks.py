"""The attacks every estimator and the verifier run on a property: the property's own search
(PGD in the ball's norm from random starts and from the centre, and FGSM) maximising the body's
violation, each violation re-checked with a fresh forward pass on the model, inside the region.
Used by constraint security (`estimate.security`, Casadio et al. Def. 7) and by the verifier's
attack stage (`verification.pipeline`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from specrob.lang import ir
from specrob.search.searches import PGD, Search, fgsm

# centres per attack batch: bounds an attack's memory (about 16 copies of (CHUNK x restarts, n)
# floats plus the model's activations), not the number of centres
CHUNK = 2048


def block_seed(seed: int, k: int) -> int:
    """The seed of block k of a run's centres (block 0: the run's seed itself), for work
    split into blocks that may run in any process (verify's and eval's blocks)."""
    return seed + 1_000_003 * k

if TYPE_CHECKING:  # the compiled property (logic) calls the searches; not imported at run time
    from specrob.logic.compiled import CompiledProperty


@dataclass(frozen=True)
class Attack:
    name: str
    search: Search


def default_attacks(steps: int = 20, restarts: int = 2) -> list[Attack]:
    """PGD from random starts, PGD from the centre itself (its first steps follow the
    gradient at x0, which random starts on a large l_2 sphere lose), and FGSM."""
    return [Attack(f"pgd-{steps}x{restarts}", PGD(steps=steps, restarts=restarts)),
            Attack(f"pgd-{steps}-centre", PGD(steps=steps, restarts=1, random_start=False)),
            Attack("fgsm", fgsm())]


def attack_once(compiled: CompiledProperty, model: nn.Module, x0: torch.Tensor,
                y: torch.Tensor, attacks: list[Attack], generator=None,
                search_model: nn.Module | None = None, *, chunk: int = CHUNK):
    """Per centre: is a confirmed violation found, by which attack, and where. The attacks
    search on `search_model` (default: the model; e.g. its logits, without a final softmax
    whose saturated gradients vanish, see `attack_model`); every violation is re-checked on
    the model itself. Each attack runs over `chunk` centres at a time (memory bounded by the
    chunk, not by the number of centres; up to `chunk` centres, one batch as before).

    Shape: x0 (B, n), y (B,) -> violated (B,) bool, found_by [B] names, points (B, n)."""
    violated = torch.zeros(len(y), dtype=torch.bool, device=x0.device)
    found_by = [""] * len(y)
    points = x0.clone()
    search_model = model if search_model is None else search_model
    with torch.no_grad():
        fx0 = compiled.centre_output(model, x0)
        search_fx0 = fx0 if search_model is model else compiled.centre_output(search_model, x0)
    def part(v, s):
        return None if v is None else v[s]

    for attack in attacks:
        bad = torch.zeros_like(violated)
        x = torch.empty_like(x0)
        for start in range(0, len(y), chunk):
            s = slice(start, start + chunk)
            x[s] = compiled.worst_point(search_model, x0[s], y[s], attack.search,
                                        generator=generator, fx0=part(search_fx0, s))
            # re-check on the model: a fresh forward pass at the reported point, in the region
            bad[s] = ~compiled.holds(model, x[s], x0[s], y[s], part(fx0, s)) & \
                compiled.region.contains(x[s], x0[s])
        new = bad & ~violated
        points[new] = x[new]
        for i in new.nonzero().flatten().tolist():
            found_by[i] = attack.name
        violated |= bad
    return violated, found_by, points


def attack_model(prop: ir.Property, model: nn.Module) -> tuple[nn.Module | None, str | None]:
    """The module attacks should search on, and a note for the results: the logits when the
    model ends in a Softmax / LogSoftmax that the property does not see (it compares outputs
    of f(x) order-wise only, see `specrob.network.final_layer`); (None, note) when the model
    ends in one the property needs; (None, None) otherwise."""
    from specrob.lang.walk import order_only
    from specrob.network.final_layer import logits_module
    logits, kind = logits_module(model)
    if kind is None:
        return None, None
    if order_only(prop.body):
        return logits, (f"final {kind} stripped for the attacks: {prop.name} compares outputs "
                        f"of f(x) order-wise only (argmax / margins), which {kind.lower()} "
                        f"preserves; violations re-checked on the model")
    return None, (f"attacks run through the final {kind}: {prop.name} needs its values; "
                  f"saturated {kind.lower()} outputs have vanishing gradients, so security "
                  f"may be overestimated")
