"""VNN-LIB export: one .vnnlib file per centre (the input box and the property's negation, the
convention of VNN-COMP: a verifier answers "unsat" when the property holds), with the ONNX
model and an instances.csv, so that any VNN-COMP verifier can check the same queries."""
from __future__ import annotations

from specrob.errors import SpecrobError

import math
import shutil
from pathlib import Path

import numpy as np

from specrob.verify import query as q


class ExportError(SpecrobError):
    """A query VNN-LIB cannot state (norms of inputs, abs): the reason."""


def _term(coeffs: np.ndarray, const: float, var: str) -> str:
    parts = [f"(* {c!r} {var}_{i})" for i, c in enumerate(coeffs.tolist()) if c != 0.0]
    if const != 0.0 or not parts:
        parts.append(repr(float(const)))
    return parts[0] if len(parts) == 1 else f"(+ {' '.join(parts)})"


def _atom(a: q.Atom) -> str:
    if a.norms or a.lin.uses_inputs():
        raise ExportError("VNN-LIB states linear constraints on the outputs only; this "
                          "property has norms or inputs in its body")
    lhs = _term(a.lin.out[0], float(a.lin.const[0]), "Y")
    op = {"<=": "<=", "<": "<=", ">=": ">=", ">": ">="}.get(a.op)  # strict ones: closure
    if op is None:
        raise ExportError(f"VNN-LIB has no '{a.op}' over reals here")
    return f"({op} {lhs} 0.0)"


def _dnf(f: q.Formula) -> list[list[q.Atom]]:
    """The formula as a disjunction of conjunctions of atoms (Const folded)."""
    if isinstance(f, q.Atom):
        return [[f]]
    if isinstance(f, q.Const):
        return [[]] if f.value else []
    if isinstance(f, q.Or):
        return [conj for item in f.items for conj in _dnf(item)]
    out: list[list[q.Atom]] = [[]]
    for item in f.items:
        out = [a + b for a in out for b in _dnf(item)]
        if len(out) > 10_000:
            raise ExportError("the negated property is too large in disjunctive normal form")
    return out


def vnnlib_text(query: q.Query, comment: str = "") -> str:
    """The VNN-LIB text of one query: inputs in the region's box, outputs violating the body."""
    region, m = query.region, query.classes
    n = region.centre.shape[0]
    lines = [f"; {line}" for line in comment.splitlines()]
    if region.p != math.inf:
        lines.append(f"; the l_{int(region.p)} ball is stated as its enclosing box: proving "
                     f"the box proves the ball")
    if query.sufficient:
        lines.append("; the body is a sufficient condition for the property (" + query.note + ")")
    lines += [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(m)]
    for i, (lo, hi) in enumerate(zip(region.box_low.tolist(), region.box_high.tolist())):
        lines.append(f"(assert (<= X_{i} {hi!r}))")
        lines.append(f"(assert (>= X_{i} {lo!r}))")
    disjuncts = _dnf(q.negate(query.body))
    if not disjuncts:
        lines.append("(assert (<= 1.0 0.0)) ; the property holds trivially")
    else:
        parts = [f"(and {' '.join(_atom(a) for a in conj)})" if conj else "(<= 0.0 0.0)"
                 for conj in disjuncts]
        lines.append(f"(assert (or {' '.join(parts)}))" if len(parts) > 1 else
                     f"(assert {parts[0]})")
    return "\n".join(lines) + "\n"


def export(queries: list[tuple[int, q.Query]], onnx_path: str | Path, out: str | Path,
           timeout: float = 60.0, comment: str = "") -> Path:
    """Write out/model.onnx, out/point_<i>.vnnlib and out/instances.csv; returns out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out / "model.onnx")
    rows = []
    for index, query in queries:
        name = f"point_{index}.vnnlib"
        (out / name).write_text(vnnlib_text(query, f"{comment}\ncentre {index}"))
        rows.append(f"model.onnx,{name},{timeout:g}")
    (out / "instances.csv").write_text("\n".join(rows) + "\n")
    return out
