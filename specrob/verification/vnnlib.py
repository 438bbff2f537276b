"""VNN-LIB export: one .vnnlib file per centre (the input box and the property's negation, the
convention of VNN-COMP: a verifier answers "unsat" when the property holds), with the ONNX
model and an instances.csv, so that any VNN-COMP verifier can check the same queries."""
from __future__ import annotations

from specrob.errors import SpecrobError

import math
import shutil
from pathlib import Path

import numpy as np

from specrob.lang import query as q


class VnnlibExportError(SpecrobError):
    """A query VNN-LIB cannot state (norms of inputs, abs): the reason."""


def _term(coeffs: np.ndarray, const: float, var: str) -> str:
    parts = [f"(* {c!r} {var}_{i})" for i, c in enumerate(coeffs.tolist()) if c != 0.0]
    if const != 0.0 or not parts:
        parts.append(repr(float(const)))
    return parts[0] if len(parts) == 1 else f"(+ {' '.join(parts)})"


def _atom(a: q.Atom) -> tuple[str, bool]:
    """The atom in the subset VNN-COMP parsers read, and whether it needed a linear
    combination: c (Y_j - Y_k) op 0 as (>= Y_j Y_k) (alpha-beta-CROWN rejects the sum form),
    c Y_j + d op 0 as (<= Y_j v) / (>= Y_j v); anything else as (op (+ (* c Y_j) ...) 0.0)."""
    if a.norms or a.lin.uses_inputs():
        raise VnnlibExportError("VNN-LIB states linear constraints on the outputs only; this "
                          "property has norms or inputs in its body")
    op = {"<=": "<=", "<": "<=", ">=": ">=", ">": ">="}.get(a.op)  # strict ones: closure
    if op is None:
        raise VnnlibExportError(f"VNN-LIB has no '{a.op}' over reals here")
    coeffs, const = a.lin.out[0], float(a.lin.const[0])
    nz = np.flatnonzero(coeffs)
    if len(nz) == 1:  # c Y_j + d op 0  ->  Y_j op' -d / c
        j, c = int(nz[0]), float(coeffs[nz[0]])
        if c < 0:
            op = "<=" if op == ">=" else ">="
        return f"({op} Y_{j} {-const / c + 0.0!r})", False
    if len(nz) == 2 and const == 0.0 and coeffs[nz[0]] == -coeffs[nz[1]]:
        j, k = (int(i) for i in nz)
        if coeffs[j] < 0:  # c Y_j - c Y_k with c > 0 first
            j, k = k, j
        high, low = (j, k) if op == ">=" else (k, j)  # Y_high >= Y_low
        return f"(>= Y_{high} Y_{low})", False
    return f"({op} {_term(coeffs, const, 'Y')} 0.0)", True


def vnnlib_text(query: q.Query, comment: str = "", label: int | None = None) -> str:
    """The VNN-LIB text of one query: inputs in the region's box, outputs violating the body,
    in the form the VNN-COMP benchmarks use: `(assert (or (and ATOM ...) ...))`."""
    region, m = query.region, query.classes
    n = region.centre.shape[0]
    disjuncts = q.dnf(q.negate(query.body), 10_000)
    if disjuncts is None:
        raise VnnlibExportError("the negated property is too large in disjunctive normal form")
    written = [[_atom(a) for a in conj] for conj in disjuncts]
    lines = [f"; {line}" for line in comment.splitlines()]
    if region.is_box:
        lines.append("; input box: per-coordinate bounds")
    else:
        norm = "inf" if math.isinf(region.p) else f"{region.p:g}"
        lines.append(f"; eps = {float(region.eps)!r}, l_{norm} ball around the centre, "
                     f"within [{float(region.low)!r}, {float(region.high)!r}]")
    if label is not None:
        lines.append(f"; label = {label}")
    if region.p != math.inf and not region.is_box:
        lines.append(f"; the l_{int(region.p)} ball is stated as its enclosing box: proving "
                     f"the box proves the ball")
    if query.sufficient:
        lines.append("; the body is a sufficient condition for the property (" + query.note + ")")
    if any(linear for conj in written for _, linear in conj):
        lines.append("; NOTE: some output constraints are linear combinations "
                     "(+ (* c Y_j) ...): this property needs them; not every VNN-COMP "
                     "verifier parses them")
    lines.append("; the assertion states a violation: unsat = the property holds")
    lines += [f"(declare-const X_{i} Real)" for i in range(n)]
    lines += [f"(declare-const Y_{j} Real)" for j in range(m)]
    for i, (lo, hi) in enumerate(zip(region.box_low.tolist(), region.box_high.tolist())):
        lines.append(f"(assert (<= X_{i} {hi!r}))")
        lines.append(f"(assert (>= X_{i} {lo!r}))")
    if not written:
        lines.append("(assert (<= 1.0 0.0)) ; the property holds trivially")
    else:
        parts = [f"(and {' '.join(text for text, _ in conj)})" if conj else "(<= 0.0 0.0)"
                 for conj in written]
        lines.append("(assert (or\n    " + "\n    ".join(parts) + "\n))")
    return "\n".join(lines) + "\n"


def export(queries: list[tuple[int, q.Query]], onnx_path: str | Path, out: str | Path,
           timeout: float = 60.0, comment: str = "",
           labels: dict[int, int] | None = None) -> Path:
    """Write out/model.onnx (with its external `.onnx.data` file, if any),
    out/point_<i>.vnnlib and out/instances.csv; returns out. Raises VnnlibExportError when `out` is
    a file or cannot be written (read-only, full disk)."""
    from specrob.runfolder import RunFolderError, write_text
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise VnnlibExportError(f"--out {out} is a file, not a folder; choose a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, out / "model.onnx")
        from specrob.network.load import external_data_files
        for name in external_data_files(onnx_path):  # under the names the model refers to
            shutil.copyfile(Path(onnx_path).parent / name, out / name)
        rows = []
        for index, query in queries:
            name = f"point_{index}.vnnlib"
            write_text(out / name, vnnlib_text(query, f"{comment}\ncentre {index}",
                                               (labels or {}).get(index)))
            rows.append(f"model.onnx,{name},{timeout:g}")
        write_text(out / "instances.csv", "\n".join(rows) + "\n")
    except RunFolderError as exc:
        raise VnnlibExportError(str(exc)) from None
    except OSError as exc:
        raise VnnlibExportError(f"--out {out}: cannot write ({exc.strerror or exc}); choose a "
                          f"writable folder with free space") from None
    return out
