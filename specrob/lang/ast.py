"""The parse tree as frozen dataclasses; every node keeps its source position."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING


@dataclass(frozen=True)
class Pos:
    """1-based start and end of a node in its file."""

    line: int = 1
    col: int = 1
    end_line: int = 1
    end_col: int = 2


NOWHERE = Pos()


def _pos() -> Pos:
    return field(default=NOWHERE, compare=False, repr=False)


# --- expressions (formulas and terms share one syntax; the checker tells them apart) ---

@dataclass(frozen=True)
class Expr:
    """Base of the expression nodes; each subclass declares its own `pos` field."""

    if TYPE_CHECKING:  # for the type checker only: a field here would come first
        @property
        def pos(self) -> Pos: ...


@dataclass(frozen=True)
class Num(Expr):
    value: float
    text: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class Str(Expr):
    value: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class Name(Expr):
    id: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class Bool(Expr):
    value: bool
    pos: Pos = _pos()


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    pos: Pos = _pos()
    func_pos: Pos = _pos()


@dataclass(frozen=True)
class Reduce(Expr):
    """`max(body for j != y)`: max or min of body over the class indices j (except one)."""

    kind: str
    body: Expr
    var: str
    exclude: Expr | None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Subscript(Expr):
    base: Expr
    index: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # + - * /
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # <= < >= > == !=
    left: Expr
    right: Expr
    pos: Pos = _pos()
    op_pos: Pos = _pos()


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Logic(Expr):
    op: str  # and / or
    items: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class Implies(Expr):
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class InputQuant(Expr):
    """`forall x in ball(x0, eps, p): body`."""

    var: str
    set: Expr
    body: Expr
    pos: Pos = _pos()
    var_pos: Pos = _pos()


@dataclass(frozen=True)
class IndexQuant(Expr):
    """`forall j != y: body` / `exists j: body` over class indices."""

    kind: str  # forall / exists
    var: str
    exclude: Expr | None
    body: Expr
    pos: Pos = _pos()


# --- declarations ---

@dataclass(frozen=True)
class PType:
    name: str
    unit: tuple[str, str | None] | None  # ("output", "input") for output/input
    pos: Pos = _pos()


@dataclass(frozen=True)
class Param:
    name: str
    type: PType | None
    default: Expr | None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Centres:
    source: str
    source_is_file: bool
    where: str | None
    count: Num | None
    count_word: str | None
    pos: Pos = _pos()
    where_pos: Pos = _pos()
    word_pos: Pos = _pos()


@dataclass(frozen=True)
class Setting:
    """`Q = ...`, `H = ...`, `G = ...` in a score; `given label` conditions Q on the label."""

    name: str
    value: Expr
    given: str | None
    pos: Pos = _pos()
    given_pos: Pos = _pos()


@dataclass(frozen=True)
class Family:
    """`eps ~ uniform(0, d)`: a parameter family with its density."""

    var: str
    dist: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Import:
    path: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class PropertyDef:
    name: str
    params: tuple[Param, ...]
    centres: Centres | None
    domain: Expr | None
    body: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class ScoreDef:
    name: str
    params: tuple[Param, ...]
    settings: tuple[Setting, ...]
    families: tuple[Family, ...]
    centres: Centres | None
    domain: Expr | None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Instance:
    """`property small = SR(eps = 0.05)`: a property or score made from a template."""

    kind: str  # property / score
    name: str
    template: str
    kwargs: tuple[Kwarg, ...]
    settings: tuple[Setting, ...]
    families: tuple[Family, ...]
    centres: Centres | None
    domain: Expr | None
    pos: Pos = _pos()
    template_pos: Pos = _pos()


Decl = PropertyDef | ScoreDef | Instance


@dataclass(frozen=True)
class SpecFile:
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
