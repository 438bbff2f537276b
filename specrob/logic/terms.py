"""Core IR terms -> batched torch tensors.

Shapes: every value has a batch axis first, then one axis per nesting depth of the index
binders (`forall j`, `max(... for j)`), of size 1 or m (the classes), and vectors one more
axis last. Binders at the same depth share an axis: it is reduced (keepdim) before a sibling
uses it. So a whole formula, index quantifiers included, is one batched computation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from specrob.lang import ir
from specrob.numerics import safe_l2

@dataclass
class Points:
    """The batch a formula is evaluated on: x, f(x), the centres x0, f(x0) and labels y."""

    x: torch.Tensor  # (B, n)
    fx: torch.Tensor  # (B, m)
    x0: torch.Tensor  # (B, n)
    fx0: torch.Tensor  # (B, m)
    y: torch.Tensor  # (B,) int64
    params: dict[str, float] = field(default_factory=dict)

    @property
    def classes(self) -> int:
        return self.fx.shape[-1]


def depth(node) -> int:
    """How many index binders nest in a formula or term (the number of index axes)."""
    if isinstance(node, (ir.IndexQuant, ir.Reduce)):
        return 1 + depth(node.body) + (depth(node.exclude) if node.exclude is not None else 0)
    if isinstance(node, tuple):
        return max((depth(n) for n in node), default=0)
    if hasattr(node, "__dataclass_fields__"):
        return max((depth(getattr(node, f)) for f in node.__dataclass_fields__ if f != "pos"),
                   default=0)
    return 0


def is_vector(t) -> bool:
    if isinstance(t, (ir.Net, ir.Input, ir.OneHot, ir.Softmax)):
        return True
    if isinstance(t, ir.Arith):
        return is_vector(t.left) or is_vector(t.right)
    if isinstance(t, ir.Neg):
        return is_vector(t.operand)
    return False


def norm(v: torch.Tensor, p: float) -> torch.Tensor:
    if p == 1:
        return v.abs().sum(-1)
    if p == 2:
        return safe_l2(v)
    return v.abs().amax(-1)


class Evaluator:
    """Evaluates terms of one formula on a batch; `axes` is the number of index axes."""

    def __init__(self, points: Points, axes: int):
        self.p = points
        self.axes = axes
        self.bound: dict[str, int] = {}  # index variable -> its axis (1-based after batch)
        self.batch = points.x.shape[0]

    def shaped(self, t: torch.Tensor, vector: bool) -> torch.Tensor:
        """(B, L) -> (B, 1, ..., 1, L) or (B,) -> (B, 1, ..., 1)."""
        shape = (t.shape[0],) + (1,) * self.axes + ((t.shape[-1],) if vector else ())
        return t.reshape(shape)

    def class_range(self, axis: int) -> torch.Tensor:
        shape = [1] * (1 + self.axes)
        shape[axis] = self.p.classes
        return torch.arange(self.p.classes, device=self.p.fx.device).reshape(shape)

    def scalar(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=self.p.fx.dtype, device=self.p.fx.device)

    # --- class indices ------------------------------------------------------------------
    def index(self, i: ir.IndexTerm) -> torch.Tensor:
        if isinstance(i, ir.Label):
            return self.shaped(self.p.y, vector=False)
        if isinstance(i, ir.IndexVar):
            return self.class_range(self.bound[i.name])
        if isinstance(i, ir.IndexConst):
            return torch.tensor(i.value, device=self.p.fx.device)
        return self.term(i.vector).argmax(-1)

    # --- terms -----------------------------------------------------------------------------
    def term(self, t) -> torch.Tensor:
        if isinstance(t, ir.Net):
            return self.shaped(self.p.fx0 if t.centre else self.p.fx, vector=True)
        if isinstance(t, ir.Input):
            return self.shaped(self.p.x0 if t.centre else self.p.x, vector=True)
        if isinstance(t, ir.Const):
            return self.scalar(t.value)
        if isinstance(t, ir.Param):
            return self.scalar(self.p.params[t.name])
        if isinstance(t, ir.DataConst):
            return self.scalar(self.p.params[t.name])
        if isinstance(t, ir.OneHot):
            idx = self.index(t.index)
            return torch.nn.functional.one_hot(idx, self.p.classes).to(self.p.fx.dtype)
        if isinstance(t, ir.Index):
            vec, idx = self.term(t.vector), self.index(t.index)
            shape = torch.broadcast_shapes(vec.shape[:-1], idx.shape)
            vec = vec.expand(*shape, vec.shape[-1])
            idx = idx.expand(shape).unsqueeze(-1)
            return vec.gather(-1, idx).squeeze(-1)
        if isinstance(t, ir.Arith):
            a, b = self.term(t.left), self.term(t.right)
            if is_vector(t.left) and not is_vector(t.right) and b.dim() > 0:
                b = b.unsqueeze(-1)
            if is_vector(t.right) and not is_vector(t.left) and a.dim() > 0:
                a = a.unsqueeze(-1)
            if t.op == "+":
                return a + b
            if t.op == "-":
                return a - b
            if t.op == "*":
                return a * b
            return a / b
        if isinstance(t, ir.Neg):
            return -self.term(t.operand)
        if isinstance(t, ir.Norm):
            return norm(self.term(t.vector), t.p)
        if isinstance(t, ir.Abs):
            return self.term(t.operand).abs()
        if isinstance(t, ir.Softmax):
            return torch.softmax(self.term(t.vector), dim=-1)
        if isinstance(t, ir.Extremum):
            items = [self.term(i) for i in t.items]
            out = items[0]
            for item in items[1:]:
                out = torch.maximum(out, item) if t.kind == "max" else torch.minimum(out, item)
            return out
        if isinstance(t, ir.Reduce):
            axis, values, excluded = self.over_classes(t.var, t.exclude, lambda: self.term(t.body))
            fill = -math.inf if t.kind == "max" else math.inf
            if excluded is not None:
                values = values.masked_fill(excluded, fill)
            return values.amax(axis, keepdim=True) if t.kind == "max" else values.amin(
                axis, keepdim=True)
        raise TypeError(f"cannot evaluate {t!r}")

    def over_classes(self, var: str, exclude, body):
        """Bind `var` to all classes on the next free axis and evaluate `body()` there.

        Returns the axis, the values expanded over it, and a mask of the excluded class (or
        None)."""
        axis = 1 + len(self.bound)
        excluded = None
        if exclude is not None:
            excluded = self.class_range(axis) == self.index(exclude)
        self.bound[var] = axis
        try:
            values = body()
        finally:
            del self.bound[var]
        full = list(values.shape)
        full[0] = self.batch
        full[axis] = self.p.classes
        values = values.expand(full)
        if excluded is not None:
            excluded = excluded.expand(full)
        return axis, values, excluded
