"""Generic questions about core IR nodes, shared by the back ends."""
from __future__ import annotations

from typing import Callable, Iterator, assert_never

from specrob.lang import ir


def children(node) -> Iterator:
    """The IR nodes directly inside a node (source positions excluded)."""
    if isinstance(node, tuple):
        yield from node
        return
    for name in getattr(node, "__dataclass_fields__", ()):
        if name not in ("pos", "source"):
            value = getattr(node, name)
            if isinstance(value, tuple) or hasattr(value, "__dataclass_fields__"):
                yield value


def depth(node) -> int:
    """The nesting depth of an IR tree, computed without recursion."""
    best, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        best = max(best, level)
        stack.extend((c, level + 1) for c in children(current))
    return best


def mentions(node, hit: Callable[[object], bool]) -> bool:
    """Does `hit` hold for the node or anything inside it?"""
    return hit(node) or any(mentions(c, hit) for c in children(node))


def varying(node) -> bool:
    """Does a term change with x (mention x or f(x), not just the centre x0, f(x0))?"""
    return mentions(node, lambda n: isinstance(n, (ir.Net, ir.Input)) and not n.centre)


def is_vector(t) -> bool:
    """Is a (type-checked) term vector-valued?"""
    if isinstance(t, (ir.Net, ir.Input, ir.OneHot, ir.Softmax)):
        return True
    if isinstance(t, ir.Arith):
        return is_vector(t.left) or is_vector(t.right)
    if isinstance(t, ir.Neg):
        return is_vector(t.operand)
    return False


def class_indices(node) -> set[int]:
    """The constant class indices a property or score mentions (f(x)[k], argmax ... == k)."""
    found, stack = set(), [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ir.IndexConst):
            found.add(int(current.value))
        stack.extend(children(current))
    return found


def check_classes(spec, classes: int) -> None:
    """Every constant class index of every declaration of `spec` must be < `classes` (the
    model's outputs). Raises SpecError located at the declaration otherwise."""
    from specrob.lang.errors import Source, SpecError
    for decl in (*spec.properties, *spec.scores):
        too_big = sorted(k for k in class_indices(decl) if k >= classes)
        if too_big:
            message = (f"{'property' if isinstance(decl, ir.Property) else 'score'} "
                       f"{decl.name} uses class index {too_big[0]}, but the model has "
                       f"{classes} outputs (classes 0 to {classes - 1})")
            source = getattr(decl, "source", None)
            pos = getattr(decl, "pos", None)
            if isinstance(source, Source) and pos is not None:
                raise source.error(message, pos, hint="use an index the model has")
            raise SpecError(message, path=spec.path, hint="use an index the model has")


def negate(f: ir.Formula) -> ir.Formula:
    """not f, again in negation normal form."""
    if isinstance(f, ir.Compare):
        return ir.Compare(ir.NEGATE[f.op], f.left, f.right, f.pos)
    if isinstance(f, ir.IndexCompare):
        return ir.IndexCompare(ir.NEGATE[f.op], f.left, f.right, f.pos)
    if isinstance(f, ir.Truth):
        return ir.Truth(not f.value)
    if isinstance(f, ir.And):
        return ir.Or(tuple(negate(i) for i in f.items))
    if isinstance(f, ir.Or):
        return ir.And(tuple(negate(i) for i in f.items))
    if isinstance(f, ir.IndexQuant):
        kind = "exists" if f.kind == "forall" else "forall"
        return ir.IndexQuant(kind, f.var, f.exclude, negate(f.body))
    assert_never(f)  # a new IR formula fails type checking here until it is negated


def lipschitz_shape(prop: ir.Property) -> tuple[str, float] | None:
    """`norm(F(x) - F(x0), q) <= alpha * norm(x - x0, p)`: the name of alpha and the input
    norm p, else None."""
    body = prop.body
    if not (isinstance(body, ir.Compare) and body.op in ("<=", "<")):
        return None
    right = body.right
    if (isinstance(right, ir.Arith) and right.op == "*" and isinstance(right.left, ir.Param)
            and isinstance(right.right, ir.Norm)
            and right.right.vector == ir.Arith("-", ir.Input(False), ir.Input(True))
            and isinstance(body.left, ir.Norm)):
        return right.left.name, right.right.p
    return None


# --- does the property see a final softmax? (network/final_layer.py) ----------------

def _is_coordinate(t) -> bool:
    """f(x)[i], or max/min of such coordinates (all of the same vector f(x))."""
    if isinstance(t, ir.Index):
        return t.vector == ir.Net(False)
    if isinstance(t, ir.Reduce):
        return _is_coordinate(t.body)
    if isinstance(t, ir.Extremum):
        return all(_is_coordinate(i) for i in t.items)
    return False


def order_only(body: ir.Formula) -> bool:
    """Does every atom of the body compare two outputs of f(x) order-wise (`f(x)[i] op
    f(x)[j]`, `f(x)[i] - f(x)[j] op 0`, or max/min of outputs of f(x) on either side)? Then
    the body has the same truth value on f and on any per-pair monotone map of f."""
    if isinstance(body, ir.Compare):
        left, right = body.left, body.right
        if _is_coordinate(left) and _is_coordinate(right):
            return True
        for a, b in ((left, right), (right, left)):
            if b == ir.Const(0.0) and isinstance(a, ir.Arith) and a.op == "-" and \
                    _is_coordinate(a.left) and _is_coordinate(a.right):
                return True
        return False
    if isinstance(body, (ir.IndexCompare, ir.Truth)):
        return True
    if isinstance(body, (ir.And, ir.Or)):
        return all(order_only(i) for i in body.items)
    if isinstance(body, ir.IndexQuant):
        return order_only(body.body)
    assert_never(body)  # a new IR formula fails type checking here until it is classified
