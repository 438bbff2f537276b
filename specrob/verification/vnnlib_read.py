"""VNN-LIB 1.0 input, as VNN-COMP benchmarks write it: one file -> a list of `q.Query`, one per
input box.

A VNN-LIB file states the *violation*: the verifier answers "unsat" when no input in the box
maps to outputs meeting the asserted output constraint, i.e. when the property holds. So each
query's body is the PROPERTY, the negation of the asserted output constraint on that box.

Read here (the subset the benchmarks use, plus its obvious closure):
- `(declare-const X_i Real)` / `(declare-const Y_j Real)`, indices 0..n-1 / 0..m-1;
- `(assert F)` where F is built from `and`, `or` and comparisons `<=`, `>=`, `<`, `>`, `=`
  between linear terms: numbers, `X_i`, `Y_j`, `(+ t ...)`, `(- t)`, `(- t t ...)`,
  `(* c t)` (one factor constant);
- comparisons of one input with a constant are input bounds; an `(or (and <input bounds>
  <output atoms>) ...)` is a disjunction over input boxes (one query per distinct box);
- `(check-sat)`, `(get-model)`, `(exit)` are accepted and ignored.
Strict input bounds are read as non-strict (the closed box is a superset: "unsat" stays
sound; a counterexample is re-checked on the model anyway).

The tokenizer and parser are specrob's own, not the PyPI `vnnlib` package: that package is a
test dependency here (the exporter's files are checked against it), and its VNN-COMP-compatible
reader only handles a subset (no disjunctions over input boxes, no located errors).
"""
from __future__ import annotations

import bisect
import gzip
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specrob.errors import SpecrobError
from specrob.lang import query as q

MAX_BYTES = 512 << 20  # uncompressed size limit of one file
MAX_DISJUNCTS = 100_000  # the asserted formula in disjunctive normal form
MAX_DEPTH = 200

_TOKEN = re.compile(r"\s+|;[^\n]*|\(|\)|[^\s();]+")
_VAR = re.compile(r"([XY])_(0|[1-9][0-9]*)$")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_OPS = {"<=", ">=", "<", ">", "="}


class VnnlibError(SpecrobError):
    """A VNN-LIB file specrob cannot read: file:line:column, what was expected."""


@dataclass(frozen=True)
class _Tok:
    text: str
    pos: int


@dataclass(frozen=True)
class _List:
    items: tuple
    pos: int


class _Source:
    def __init__(self, path: str, text: str):
        self.path, self.text = path, text
        self.lines = [m.start() for m in re.finditer("\n", text)]

    def where(self, pos: int) -> str:
        line = bisect.bisect_left(self.lines, pos)
        col = pos - (self.lines[line - 1] + 1 if line > 0 else 0) + 1
        return f"{self.path}:{line + 1}:{col}"

    def error(self, pos: int, message: str) -> VnnlibError:
        return VnnlibError(f"{self.where(pos)}: {message}")


def read_text(path: str | Path) -> str:
    """The file's text (a `.gz` file decompressed), at most MAX_BYTES."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise VnnlibError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
                          ) from None
    if len(data) > MAX_BYTES:
        raise VnnlibError(f"{path}: larger than {MAX_BYTES >> 20} MiB; not read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VnnlibError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _parse(src: _Source) -> list[_List | _Tok]:
    """The top-level s-expressions."""
    stack: list[tuple[int, list]] = [(-1, [])]
    for m in _TOKEN.finditer(src.text):
        t = m.group()
        if t[0].isspace() or t[0] == ";":
            continue
        if t == "(":
            if len(stack) > MAX_DEPTH:
                raise src.error(m.start(), f"nesting deeper than {MAX_DEPTH}")
            stack.append((m.start(), []))
        elif t == ")":
            if len(stack) == 1:
                raise src.error(m.start(), "expected '(' or an atom, found an unmatched ')'")
            pos, items = stack.pop()
            stack[-1][1].append(_List(tuple(items), pos))
        else:
            stack[-1][1].append(_Tok(t, m.start()))
    if len(stack) > 1:
        raise src.error(stack[-1][0], "this '(' is never closed: expected ')' before the end "
                                      "of the file")
    return stack[0][1]


class _Reader:
    def __init__(self, src: _Source):
        self.src = src
        self.declared: dict[str, int] = {}  # name -> position
        self.n = self.m = 0

    def err(self, node, message: str) -> VnnlibError:
        return self.src.error(node.pos, message)

    def declare(self, e: _List) -> None:
        if len(e.items) != 3 or not all(isinstance(i, _Tok) for i in e.items[1:]):
            raise self.err(e, "expected (declare-const NAME Real)")
        name, sort = e.items[1], e.items[2]
        if sort.text != "Real":
            raise self.err(sort, f"expected the sort Real, found '{sort.text}'")
        if not _VAR.match(name.text):
            raise self.err(name, f"expected an input X_i or an output Y_j, found "
                                 f"'{name.text}'")
        if name.text in self.declared:
            raise self.err(name, f"'{name.text}' is declared twice")
        self.declared[name.text] = name.pos

    def check_declarations(self) -> None:
        for kind in "XY":
            indices = sorted(int(k[2:]) for k in self.declared if k[0] == kind)
            if indices != list(range(len(indices))):
                missing = next(i for i in range(len(indices) + 1) if i not in indices)
                raise VnnlibError(f"{self.src.path}: {kind}_{missing} is not declared (the "
                                  f"{'inputs' if kind == 'X' else 'outputs'} must be "
                                  f"{kind}_0 .. {kind}_{len(indices) - 1 if indices else 0})")
            if kind == "X":
                self.n = len(indices)
            else:
                self.m = len(indices)
        if self.n == 0 or self.m == 0:
            raise VnnlibError(f"{self.src.path}: expected declarations of the inputs X_i and "
                              f"the outputs Y_j (declare-const X_0 Real)")

    # --- terms: (coefficients over X, over Y, constant) ----------------------------------
    def term(self, e) -> tuple[dict, dict, float]:
        if isinstance(e, _Tok):
            if _NUMBER.match(e.text):
                return {}, {}, float(e.text)
            m = _VAR.match(e.text)
            if m:
                if e.text not in self.declared:
                    raise self.err(e, f"'{e.text}' is not declared (declare-const {e.text} "
                                      f"Real)")
                i = int(m.group(2))
                return ({i: 1.0}, {}, 0.0) if m.group(1) == "X" else ({}, {i: 1.0}, 0.0)
            raise self.err(e, f"expected a number, X_i or Y_j, found '{e.text}'")
        if not e.items or not isinstance(e.items[0], _Tok):
            raise self.err(e, "expected a term (+ ...), (- ...), (* c t), a number or a "
                              "variable")
        head, args = e.items[0].text, e.items[1:]
        if head == "+" and args:
            return _sum([self.term(a) for a in args])
        if head == "-" and len(args) == 1:
            return _scale(self.term(args[0]), -1.0)
        if head == "-" and args:
            return _sum([self.term(args[0])] + [_scale(self.term(a), -1.0) for a in args[1:]])
        if head == "*" and len(args) >= 2:
            parts = [self.term(a) for a in args]
            out = parts[0]
            for a, p in zip(args[1:], parts[1:]):
                if not out[0] and not out[1]:
                    out = _scale(p, out[2])
                elif not p[0] and not p[1]:
                    out = _scale(out, p[2])
                else:
                    raise self.err(a, "expected a constant factor: (* c t) is linear only "
                                      "when all factors but one are numbers")
            return out
        raise self.err(e, f"expected a term (+ t ...), (- t ...) or (* c t), found "
                          f"'({head} ...)' with {len(args)} argument(s)")

    # --- formulas -------------------------------------------------------------------------
    def formula(self, e) -> q.Formula:
        if not isinstance(e, _List) or not e.items or not isinstance(e.items[0], _Tok):
            raise self.err(e, "expected a formula (and ...), (or ...) or a comparison "
                              "(<= a b)")
        head, args = e.items[0].text, e.items[1:]
        if head in ("and", "or"):
            if not args:
                return q.Const(head == "and")
            items = tuple(self.formula(a) for a in args)
            return q.And(items) if head == "and" else q.Or(items)
        if head in _OPS:
            if len(args) != 2:
                raise self.err(e, f"expected ({head} a b) with two terms, found "
                                  f"{len(args)}")
            xa, ya, ca = self.term(args[0])
            xb, yb, cb = self.term(args[1])
            xs, ys, c = _sum([(xa, ya, ca), _scale((xb, yb, cb), -1.0)])
            atom = q.Atom(q.Affine(_dense(ys, self.m), _dense(xs, self.n), np.array([c])), (),
                          "==" if head == "=" else head)
            return atom
        raise self.err(e.items[0], f"expected and, or, <=, >=, <, > or =, found '{head}'")

    def read(self) -> tuple[list[q.Formula], int, int]:
        asserts = []
        for e in _parse(self.src):
            if not isinstance(e, _List) or not e.items or not isinstance(e.items[0], _Tok):
                raise self.err(e, "expected a command (declare-const ...) or (assert ...)")
            head = e.items[0].text
            if head == "declare-const":
                self.declare(e)
            elif head == "assert":
                if len(e.items) != 2:
                    raise self.err(e, "expected (assert FORMULA) with one formula")
                asserts.append(e.items[1])
            elif head in ("check-sat", "get-model", "exit", "set-logic", "set-info"):
                continue
            else:
                raise self.err(e.items[0], f"expected declare-const or assert, found '{head}'")
        self.check_declarations()
        return [self.formula(a) for a in asserts], self.n, self.m


def _scale(t, c: float):
    return {k: v * c for k, v in t[0].items()}, {k: v * c for k, v in t[1].items()}, t[2] * c


def _sum(parts):
    xs: dict = {}
    ys: dict = {}
    c = 0.0
    for px, py, pc in parts:
        for k, v in px.items():
            xs[k] = xs.get(k, 0.0) + v
        for k, v in py.items():
            ys[k] = ys.get(k, 0.0) + v
        c += pc
    return xs, ys, c


def _dense(coefs: dict, size: int) -> np.ndarray:
    out = np.zeros((1, size))
    for k, v in coefs.items():
        out[0, k] = v
    return out


def _input_bound(a: q.Atom) -> tuple[int, str, float] | None:
    """(i, "low"|"high"|"both", value) when the atom bounds one input by a constant."""
    if a.lin.out.any():
        return None
    nz = np.flatnonzero(a.lin.inp[0])
    if len(nz) != 1:
        return None
    i = int(nz[0])
    coef, c = float(a.lin.inp[0, i]), float(a.lin.const[0])
    value = -c / coef + 0.0  # no -0.0
    if a.op == "==":
        return i, "both", value
    if a.op not in ("<=", "<", ">=", ">"):
        return None
    upper = (a.op in ("<=", "<")) == (coef > 0)
    return i, "high" if upper else "low", value


def _conjuncts(f: q.Formula) -> list[q.Formula]:
    if isinstance(f, q.And):
        return [c for item in f.items for c in _conjuncts(item)]
    return [f]


def _tighten(low: np.ndarray, high: np.ndarray, bound: tuple[int, str, float]) -> None:
    i, side, value = bound
    if side in ("low", "both"):
        low[i] = max(low[i], value)
    if side in ("high", "both"):
        high[i] = min(high[i], value)


def read_vnnlib(path: str | Path) -> list[q.Query]:
    """The queries of one VNN-LIB file (`.gz` read directly): one per distinct input box, its
    body the property (the negation of the asserted output constraint). An empty list when no
    input satisfies the input constraints (nothing to violate). Raises VnnlibError."""
    path = Path(path)
    src = _Source(str(path), read_text(path))
    reader = _Reader(src)
    formulas, n, m = reader.read()
    low, high = np.full(n, -math.inf), np.full(n, math.inf)
    rest: list[q.Formula] = []
    for f in formulas:
        for c in _conjuncts(f):
            bound = _input_bound(c) if isinstance(c, q.Atom) else None
            if bound is not None:
                _tighten(low, high, bound)
            else:
                rest.append(c)
    boxes: dict[bytes, tuple[np.ndarray, np.ndarray, list]] = {}
    disjuncts = q.dnf(q.And(tuple(rest)), MAX_DISJUNCTS)
    if disjuncts is None:
        raise VnnlibError(f"{path}: the asserted formula has more than {MAX_DISJUNCTS} "
                          f"disjuncts in disjunctive normal form; not read")
    for conj in disjuncts:
        lo, hi, atoms = low.copy(), high.copy(), []
        for a in conj:
            bound = _input_bound(a)
            if bound is not None:
                _tighten(lo, hi, bound)
            else:
                atoms.append(a)
        if np.any(lo > hi):
            continue  # an empty box: nothing to violate there
        key = lo.tobytes() + hi.tobytes()
        boxes.setdefault(key, (lo, hi, []))[2].append(atoms)
    queries = []
    for lo, hi, violations in boxes.values():
        unbounded = np.flatnonzero(~(np.isfinite(lo) & np.isfinite(hi)))
        if len(unbounded):
            i = int(unbounded[0])
            side = "lower" if not np.isfinite(lo[i]) else "upper"
            raise VnnlibError(f"{src.where(reader.declared[f'X_{i}'])}: X_{i} has no {side} "
                              f"bound: expected (assert ({'>=' if side == 'lower' else '<='} "
                              f"X_{i} c)) (specrob verifies bounded input boxes)")
        violation = q.Or(tuple(q.And(tuple(atoms)) for atoms in violations))
        body = _simplify(q.negate(violation))
        queries.append(q.Query(body, q.InputRegion.box(lo, hi), m,
                               note=f"{path.name}: box {len(queries)}"))
    return queries


def _simplify(f: q.Formula) -> q.Formula:
    """One-element And/Or unwrapped, nested ones of the same kind flattened."""
    if isinstance(f, (q.And, q.Or)):
        items = []
        for item in (_simplify(i) for i in f.items):
            if type(item) is type(f) and isinstance(item, (q.And, q.Or)):
                items.extend(item.items)
            else:
                items.append(item)
        if not items:
            return q.Const(isinstance(f, q.And))
        return items[0] if len(items) == 1 else type(f)(tuple(items))
    return f
