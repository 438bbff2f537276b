"""Core IR terms -> batched torch functions, compiled once per property.

Shapes: every value has a batch axis first, then one axis per nesting depth of the index
binders (`forall j`, `max(... for j)`), of size 1 or m (the classes), and vectors one more
axis last. Binders at the same depth share an axis: it is reduced (keepdim) before a sibling
uses it. So a whole formula, index quantifiers included, is one batched computation.

Compiling walks the IR once; evaluating runs closures only. A term's value is memoised per
evaluation (`Env.memo`), so a body and its negation evaluated together share every term.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, assert_never

import torch

from specrob.lang import ir
from specrob.lang.walk import children, is_vector, mentions
from specrob.numerics import norm


@dataclass
class Points:
    """The batch a formula is evaluated on: x, f(x), the centres x0, f(x0) and labels y."""

    x: torch.Tensor  # (B, n)
    fx: torch.Tensor  # (B, m)
    x0: torch.Tensor  # (B, n)
    fx0: torch.Tensor  # (B, m)
    y: torch.Tensor  # (B,) int64
    params: dict[str, float] = field(default_factory=dict)


_RANGES: dict[tuple, torch.Tensor] = {}  # arange(m) shaped for an axis: the same every call


class Env:
    """One evaluation: the points, the number of index axes, memoised term values."""

    def __init__(self, points: Points, axes: int):
        self.p = points
        self.axes = axes
        self.batch = points.x.shape[0]
        self.classes = points.fx.shape[-1]
        self.memo: dict = {}

    def shaped(self, t: torch.Tensor, vector: bool) -> torch.Tensor:
        """(B, L) -> (B, 1, ..., 1, L); (B,) -> (B, 1, ..., 1)."""
        return t.reshape((t.shape[0],) + (1,) * self.axes + ((t.shape[-1],) if vector else ()))

    def class_range(self, axis: int) -> torch.Tensor:
        key = (self.classes, self.axes, axis, self.p.fx.device)
        found = _RANGES.get(key)
        if found is None:
            shape = [1] * (1 + self.axes)
            shape[axis] = self.classes
            found = _RANGES[key] = torch.arange(self.classes, device=self.p.fx.device).reshape(shape)
        return found

    def scalar(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=self.p.fx.dtype, device=self.p.fx.device)


Fn = Callable[[Env], torch.Tensor]


def depth(node) -> int:
    """How many index binders nest in a formula or term (the number of index axes)."""
    if isinstance(node, (ir.IndexQuant, ir.Reduce)):
        return 1 + depth(node.body) + (depth(node.exclude) if node.exclude is not None else 0)
    return max((depth(c) for c in children(node)), default=0)


def _index_value(vec: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """vec[..., idx] with vec (..., L) and idx broadcastable to vec's leading shape."""
    lead = vec.shape[:-1]
    if idx.shape != lead:
        shape = torch.Size(max(a, b) for a, b in zip(lead, (1,) * (len(lead) - idx.dim())
                                                     + tuple(idx.shape)))
        vec = vec.expand(*shape, vec.shape[-1])
        idx = idx.expand(shape)
    return vec.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


class TermCompiler:
    """Compiles terms under a scope (index variable -> axis); shares memo slots between
    structurally equal terms in equal scopes."""

    def __init__(self):
        self.slots: dict[tuple, int] = {}

    def index(self, i: ir.IndexTerm, scope: dict[str, int]) -> Fn:
        if isinstance(i, ir.Label):
            return lambda env: env.shaped(env.p.y, vector=False)
        if isinstance(i, ir.IndexVar):
            axis = scope[i.name]
            return lambda env: env.class_range(axis)
        if isinstance(i, ir.IndexConst):
            value = i.value
            return lambda env: torch.tensor(value, device=env.p.fx.device)
        vector = self.term(i.vector, scope)
        return lambda env: vector(env).argmax(-1)

    def term(self, t: ir.Term, scope: dict[str, int]) -> Fn:
        fn = self._term(t, scope)
        key = (t, tuple(sorted(scope.items())))
        slot = self.slots.setdefault(key, len(self.slots))

        def memoised(env: Env) -> torch.Tensor:
            value = env.memo.get(slot)
            if value is None:
                value = env.memo[slot] = fn(env)
            return value
        return memoised

    def _term(self, t, scope: dict[str, int]) -> Fn:
        if isinstance(t, ir.Net):
            if t.centre:
                return lambda env: env.shaped(env.p.fx0, vector=True)
            return lambda env: env.shaped(env.p.fx, vector=True)
        if isinstance(t, ir.Input):
            if t.centre:
                return lambda env: env.shaped(env.p.x0, vector=True)
            return lambda env: env.shaped(env.p.x, vector=True)
        if isinstance(t, ir.Const):
            value = t.value
            return lambda env: env.scalar(value)
        if isinstance(t, (ir.Param, ir.DataConst)):
            name = t.name
            return lambda env: env.scalar(env.p.params[name])
        if isinstance(t, ir.OneHot):
            idx = self.index(t.index, scope)
            return lambda env: torch.nn.functional.one_hot(idx(env), env.classes).to(env.p.fx.dtype)
        if isinstance(t, ir.Index):
            return self._indexed(t, scope)
        if isinstance(t, ir.Arith):
            a, b = self.term(t.left, scope), self.term(t.right, scope)
            # a scalar meets a vector: give it the vector's last axis
            if is_vector(t.left) and not is_vector(t.right):
                b = _with_vector_axis(b)
            elif is_vector(t.right) and not is_vector(t.left):
                a = _with_vector_axis(a)
            op = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div}[t.op]
            return lambda env: op(a(env), b(env))
        if isinstance(t, ir.Neg):
            inner = self.term(t.operand, scope)
            return lambda env: -inner(env)
        if isinstance(t, ir.Norm):
            inner, p = self.term(t.vector, scope), t.p
            return lambda env: norm(inner(env), p)
        if isinstance(t, ir.Abs):
            inner = self.term(t.operand, scope)
            return lambda env: inner(env).abs()
        if isinstance(t, ir.Softmax):
            inner = self.term(t.vector, scope)
            return lambda env: torch.softmax(inner(env), dim=-1)
        if isinstance(t, ir.Extremum):
            items = [self.term(i, scope) for i in t.items]
            pick = torch.maximum if t.kind == "max" else torch.minimum

            def extremum(env):
                out = items[0](env)
                for item in items[1:]:
                    out = pick(out, item(env))
                return out
            return extremum
        if isinstance(t, ir.Reduce):
            over = self.over_classes(t.var, t.exclude, scope, self.term)
            body = over.body(t.body)
            fill = -math.inf if t.kind == "max" else math.inf
            reduce = torch.amax if t.kind == "max" else torch.amin

            def reduction(env):
                values, excluded = over(env, body)
                if excluded is not None:
                    values = values.masked_fill(excluded, fill)
                return reduce(values, over.axis, keepdim=True)
            return reduction
        assert_never(t)  # a new IR term fails type checking here until it is compiled

    def _indexed(self, t: ir.Index, scope: dict[str, int]) -> Fn:
        vec = self.term(t.vector, scope)
        if (isinstance(t.index, ir.IndexVar) and _is_class_vector(t.vector)
                and not mentions(t.vector, lambda n: isinstance(n, ir.IndexVar))):
            # v[j] over all classes j on j's axis: the vector's last axis moved there
            axis = scope[t.index.name]
            return lambda env: vec(env).transpose(axis, -1).squeeze(-1)
        idx = self.index(t.index, scope)
        return lambda env: _index_value(vec(env), idx(env))

    def over_classes(self, var: str, exclude, scope: dict[str, int], compile_body):
        return _OverClasses(self, var, exclude, scope, compile_body)


def _is_class_vector(t) -> bool:
    """A vector of length m (the classes): built from f(.), onehot and softmax."""
    if isinstance(t, (ir.Net, ir.OneHot)):
        return True
    if isinstance(t, ir.Softmax):
        return _is_class_vector(t.vector)
    if isinstance(t, ir.Arith):
        return any(_is_class_vector(s) for s in (t.left, t.right) if is_vector(s))
    if isinstance(t, ir.Neg):
        return _is_class_vector(t.operand)
    return False


def _with_vector_axis(fn: Fn) -> Fn:
    def lifted(env):
        value = fn(env)
        return value.unsqueeze(-1) if value.dim() > 0 else value
    return lifted


class _OverClasses:
    """A binder: `var` ranges over all classes on the next free axis (the excluded class
    masked); `body` is compiled in the extended scope."""

    def __init__(self, compiler: TermCompiler, var: str, exclude, scope, compile_body):
        self.axis = 1 + len(scope)
        self.scope = {**scope, var: self.axis}
        self.compile_body = compile_body
        self.exclude = compiler.index(exclude, scope) if exclude is not None else None
        self.exclude_key = (exclude, tuple(sorted(scope.items())))

    def body(self, node) -> Fn:
        return self.compile_body(node, self.scope)

    def __call__(self, env: Env, body: Fn):
        values = body(env)
        full = list(values.shape) + [1] * (1 + env.axes - values.dim())
        full[0], full[self.axis] = env.batch, env.classes
        values = values.reshape(values.shape + (1,) * (1 + env.axes - values.dim())) \
            if values.dim() < 1 + env.axes else values
        values = values.expand(full)
        excluded = None
        if self.exclude is not None:  # shared by a body and its negation within one call
            key = ("excluded", self.axis, self.exclude_key, tuple(full))
            excluded = env.memo.get(key)
            if excluded is None:
                excluded = env.memo[key] = (env.class_range(self.axis)
                                            == self.exclude(env)).expand(full)
        return values, excluded
