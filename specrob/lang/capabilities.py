"""What each back end can do with a property: piecewise linearity and per-back-end support.

`exact`: the back end encodes the property itself. `sound`: it encodes a stronger condition,
so its "verified" stays sound but it may answer "unknown" more often (an l_2 ball checked on
its enclosing box; SCR through the softmax margin conditions of docs/design.md §4). `no`: refused,
with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

from specrob.lang import ir
from specrob.lang.walk import children, varying

BACKENDS = ("loss", "attack", "bounds", "marabou", "vnnlib")


@dataclass(frozen=True)
class Support:
    level: str  # exact / sound / no
    note: str = ""

    def __str__(self) -> str:
        return self.level + (f" ({self.note})" if self.note else "")


def _term_nonlinear(t, out: list[str]) -> None:
    from specrob.lang.printer import term as show
    if isinstance(t, ir.Softmax) and varying(t.vector):
        out.append(f"softmax({show(t.vector)}) is not piecewise linear")
        return
    if isinstance(t, ir.Norm) and t.p == 2 and varying(t.vector):
        out.append(f"the l_2 norm {show(t)} is not piecewise linear")
        return
    if isinstance(t, ir.Arith) and t.op == "*" and varying(t.left) and varying(t.right):
        out.append(f"{show(t)} multiplies two terms that change with x")
    if isinstance(t, ir.Arith) and t.op == "/" and varying(t.right):
        out.append(f"{show(t)} divides by a term that changes with x")
    for child in children(t):
        for node in (child if isinstance(child, tuple) else (child,)):
            _term_nonlinear(node, out)


def atoms(f: ir.Formula) -> list[ir.Compare]:
    if isinstance(f, ir.Compare):
        return [f]
    if isinstance(f, (ir.And, ir.Or)):
        return [a for item in f.items for a in atoms(item)]
    if isinstance(f, ir.IndexQuant):
        return atoms(f.body)
    return []


def nonlinear_reasons(body: ir.Formula) -> tuple[str, ...]:
    """Why the body is not piecewise linear in x and f(x); empty when it is."""
    out: list[str] = []
    for atom in atoms(body):
        _term_nonlinear(atom.left, out)
        _term_nonlinear(atom.right, out)
    return tuple(dict.fromkeys(out))


def _affine(t) -> bool:
    """Affine in the coordinates of x and f(x), with constant coefficients."""
    if not varying(t):
        return True
    if isinstance(t, ir.Index):
        return isinstance(t.vector, (ir.Net, ir.Input)) or _affine(t.vector)
    if isinstance(t, (ir.Net, ir.Input)):
        return True
    if isinstance(t, ir.Neg):
        return _affine(t.operand)
    if isinstance(t, ir.Arith):
        if t.op in "+-":
            return _affine(t.left) and _affine(t.right)
        if t.op == "*":
            return (_affine(t.left) and not varying(t.right)) or (
                _affine(t.right) and not varying(t.left))
        return _affine(t.left) and not varying(t.right)
    return False


def _linear_atom(a: ir.Compare) -> bool:
    """An atom that is a linear output/input constraint or a conjunction of them."""
    if _affine(a.left) and _affine(a.right):
        return True
    # norm(v, inf) <= c  is  forall i: -c <= v[i] <= c
    for big, small, ops in ((a.left, a.right, ("<=", "<")), (a.right, a.left, (">=", ">"))):
        if (a.op in ops and isinstance(big, ir.Norm) and big.p == ir.INF
                and _affine(big.vector) and not varying(small)):
            return True
    return False


def _scr_atom(a: ir.Compare) -> bool:
    """softmax(f(x))[i] >= c with c constant: docs/design.md §4's margin conditions apply."""
    for lhs, rhs, ops in ((a.left, a.right, (">=", ">")), (a.right, a.left, ("<=", "<"))):
        if (a.op in ops and isinstance(lhs, ir.Index) and isinstance(lhs.vector, ir.Softmax)
                and lhs.vector.vector == ir.Net(False) and not varying(rhs)):
            return True
    return False


def _has_disjunction(f: ir.Formula) -> bool:
    if isinstance(f, ir.Or) or (isinstance(f, ir.IndexQuant) and f.kind == "exists"):
        return True
    if isinstance(f, ir.And):
        return any(_has_disjunction(i) for i in f.items)
    if isinstance(f, ir.IndexQuant):
        return _has_disjunction(f.body)
    return False


def backends(prop: ir.Property) -> dict[str, Support]:
    """Per back end: can it handle this property exactly, soundly, or not at all (why)."""
    out = {"loss": Support("exact", "differentiable logics; the ball by projected search"),
           "attack": Support("exact", "maximises the violation inside ball ∩ domain")}
    body_atoms = atoms(prop.body)
    linear = all(_linear_atom(a) for a in body_atoms)
    scr = [a for a in body_atoms if not _linear_atom(a)]
    scr_only = bool(scr) and all(_scr_atom(a) for a in scr)
    reasons = prop.nonlinear
    box_note = "l_2 ball checked on its enclosing box" if prop.ball.p == 2 else (
        "l_1 ball checked on its enclosing box" if prop.ball.p == 1 else "")

    if linear:
        note = ("a disjunction is verified only when one part holds on the whole ball"
                if _has_disjunction(prop.body) else "")
        out["bounds"] = Support("sound" if note else "exact", note)
    elif scr_only:
        out["bounds"] = Support("sound", "softmax through its sufficient margin condition")
    else:
        out["bounds"] = Support("no", _why_not_linear(body_atoms, reasons))

    if prop.piecewise_linear:
        out["marabou"] = Support("sound", box_note) if prop.ball.p == 2 else Support("exact")
    elif scr_only:
        note = "softmax through its margin conditions" + (f"; {box_note}" if box_note else "")
        out["marabou"] = Support("sound", note)
    else:
        out["marabou"] = Support("no", "; ".join(reasons))

    if linear and prop.ball.p == ir.INF:
        out["vnnlib"] = Support("exact")
    elif linear:
        out["vnnlib"] = Support("sound", box_note)
    elif scr_only:
        out["vnnlib"] = Support("sound", "softmax through its sufficient margin condition"
                                + (f"; {box_note}" if box_note else ""))
    else:
        out["vnnlib"] = Support("no", _why_not_linear(body_atoms, reasons))
    return out


def _why_not_linear(body_atoms: list[ir.Compare], reasons: tuple[str, ...]) -> str:
    from specrob.lang.printer import formula
    bad = [a for a in body_atoms if not (_linear_atom(a) or _scr_atom(a))]
    text = formula(bad[0]) if bad else ""
    return f"not a linear constraint on the outputs: {text}" if text else "; ".join(reasons)
