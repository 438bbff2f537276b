"""Differentiable logics: how atoms, connectives and index quantifiers become numbers.

DL2 (Fischer et al. 2019) works directly in loss space: an atom's loss is >= 0 and 0 exactly
when it holds; `and` sums, `or` multiplies. The fuzzy logics work with truth degrees in [0, 1]
(1 exactly when an atom holds) and their loss is 1 - truth. `Boolean` is crisp satisfaction,
used for metrics. Bodies are in negation normal form, so no logic needs a negation.
Add a logic by subclassing `Logic` and adding it to `LOGICS`.
"""
from __future__ import annotations

import math

import torch

from specrob.numerics import safe_root

def dl2_atom(op: str, a: torch.Tensor, b: torch.Tensor, xi: float) -> torch.Tensor:
    """DL2's comparison losses; strict ones add xi at a tie (Fischer et al., Table 1)."""
    if op in (">=", ">"):
        op, a, b = {">=": "<=", ">": "<"}[op], b, a
    if op == "<=" or (op == "<" and xi == 0):
        return torch.relu(a - b)
    if op == "<":
        return torch.relu(a - b) + xi * (a == b).to(a.dtype)
    if op == "==":
        return (a - b).abs()
    return xi * (a == b).to(a.dtype)  # !=


class Logic:
    """A logic: values for atoms and constants, folds for connectives and quantifiers."""

    name = "logic"
    true: float = 1.0   # the value of a formula that holds
    false: float = 0.0

    def __init__(self, xi: float = 0.1):
        self.xi = xi

    @property
    def all_neutral(self) -> float:
        """The value that leaves `all` unchanged (for the class a quantifier excludes)."""
        return self.true

    @property
    def any_neutral(self) -> float:
        """The value that leaves `any` unchanged."""
        return self.false

    def atom(self, op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + dl2_atom(op, a, b, self.xi))

    def crisp(self, holds: torch.Tensor) -> torch.Tensor:
        return torch.where(holds, self.true, self.false)

    def conj(self, values: list[torch.Tensor]) -> torch.Tensor:
        return self.all(torch.stack(torch.broadcast_tensors(*values), -1), -1, keepdim=False)

    def disj(self, values: list[torch.Tensor]) -> torch.Tensor:
        return self.any(torch.stack(torch.broadcast_tensors(*values), -1), -1, keepdim=False)

    def all(self, v: torch.Tensor, dim: int, keepdim: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def any(self, v: torch.Tensor, dim: int, keepdim: bool = True) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, value: torch.Tensor) -> torch.Tensor:
        """>= 0, and 0 exactly where the formula holds."""
        return 1.0 - value


class DL2(Logic):
    """Fischer et al. 2019: t1 <= t2 -> max(t1 - t2, 0), == -> |t1 - t2|, and -> sum,
    or -> product."""

    name = "dl2"
    true, false = 0.0, 1.0

    def atom(self, op, a, b):
        return dl2_atom(op, a, b, self.xi)

    def all(self, v, dim, keepdim=True):
        return v.sum(dim, keepdim=keepdim)

    def any(self, v, dim, keepdim=True):
        return v.prod(dim, keepdim=keepdim)

    def loss(self, value):
        return value


class SearchDL2(DL2):
    """DL2 with `or` as the minimum: the same zero set as the product (a disjunction holds
    iff one part does), so the sign of L(body) - L(not body) is unchanged, but its gradient
    follows the part closest to holding, as a margin attack does, and is cheaper to
    differentiate than a product with zeros. Used only to steer searches."""

    name = "search-dl2"
    false = 1e6  # a crisp falsehood: large, so that `min` in a disjunction passes over it

    @property
    def any_neutral(self) -> float:
        return math.inf

    def any(self, v, dim, keepdim=True):
        return v.amin(dim, keepdim=keepdim)


class Goedel(Logic):
    name = "goedel"

    def all(self, v, dim, keepdim=True):
        return v.amin(dim, keepdim=keepdim)

    def any(self, v, dim, keepdim=True):
        return v.amax(dim, keepdim=keepdim)


class Lukasiewicz(Logic):
    name = "lukasiewicz"

    def all(self, v, dim, keepdim=True):
        return torch.relu(v.sum(dim, keepdim=keepdim) - (v.shape[dim] - 1))

    def any(self, v, dim, keepdim=True):
        return v.sum(dim, keepdim=keepdim).clamp(max=1.0)


class Product(Logic):
    """Product t-norm with the Reichenbach implication's dual: a or b = a + b - ab."""

    name = "product"

    def all(self, v, dim, keepdim=True):
        return v.prod(dim, keepdim=keepdim)

    def any(self, v, dim, keepdim=True):
        return 1.0 - (1.0 - v).prod(dim, keepdim=keepdim)


class Yager(Logic):
    """Yager's t-norm with parameter p >= 1: and = max(0, 1 - ||1 - a||_p), or = min(1, ||a||_p)."""

    name = "yager"

    def __init__(self, xi: float = 0.1, p: float = 2.0):
        super().__init__(xi)
        if p < 1:
            raise ValueError("Yager's p must be >= 1")
        self.p = p

    def all(self, v, dim, keepdim=True):
        return torch.relu(1.0 - safe_root(((1.0 - v) ** self.p).sum(dim, keepdim=keepdim), self.p))

    def any(self, v, dim, keepdim=True):
        return safe_root((v ** self.p).sum(dim, keepdim=keepdim), self.p).clamp(max=1.0)


class Boolean(Logic):
    """Crisp satisfaction (True where the formula holds); no gradients."""

    name = "boolean"

    def atom(self, op, a, b):
        return {"<=": a <= b, "<": a < b, ">=": a >= b, ">": a > b, "==": a == b,
                "!=": a != b}[op]

    def crisp(self, holds):
        return holds

    def all(self, v, dim, keepdim=True):
        return v.all(dim, keepdim=keepdim)

    def any(self, v, dim, keepdim=True):
        return v.any(dim, keepdim=keepdim)

    def loss(self, value):
        return (~value).to(torch.float32)


LOGICS: dict[str, type[Logic]] = {c.name: c for c in (DL2, Goedel, Lukasiewicz, Product, Yager)}


def make_logic(name: str, **options) -> Logic:
    """'dl2', 'goedel', 'lukasiewicz', 'product', 'yager' or 'yager:P' (e.g. yager:3)."""
    base, _, arg = name.partition(":")
    if base not in LOGICS:
        raise ValueError(f"unknown logic '{name}': choose one of {', '.join(LOGICS)}")
    if arg:
        if base != "yager":
            raise ValueError(f"only yager takes a parameter (yager:P), not {base}")
        options["p"] = float(arg)
    return LOGICS[base](**options)
