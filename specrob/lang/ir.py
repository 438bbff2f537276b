"""The core IR: what every back end (loss, attack, verifier) consumes. Frozen dataclasses.

A checked property is `forall x in ball(x0, eps, p) ∩ domain: body` over a set of centres, with
the body in negation normal form (no `not`/`implies`; negation is pushed into the atoms),
`argmax` already desugared into margins, and parameters kept by name with their values in
the property's parameter table. Source positions ride along (`pos`) but never take part in
equality, so IR -> text -> IR compares equal.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

from specrob.errors import SpecrobError
from specrob.lang.ast import NOWHERE, Pos

INF = math.inf


def _pos() -> Pos:
    return field(default=NOWHERE, compare=False, repr=False)


# --- class-index terms -------------------------------------------------------------------

@dataclass(frozen=True)
class Label:
    """y: the label of the centre."""


@dataclass(frozen=True)
class IndexVar:
    """A class index bound by `forall j`, `exists j` or `max(... for j)`."""

    name: str


@dataclass(frozen=True)
class IndexConst:
    value: int


@dataclass(frozen=True)
class ArgmaxAt:
    """argmax of a vector that depends on the centre only, e.g. argmax(f(x0))."""

    vector: "Term"


IndexTerm = Union[Label, IndexVar, IndexConst, ArgmaxAt]


# --- real- and vector-valued terms ---------------------------------------------------------

@dataclass(frozen=True)
class Net:
    """f(x) (centre=False) or f(x0) (centre=True): the logits, a vector of length m."""

    centre: bool


@dataclass(frozen=True)
class Input:
    """x (centre=False) or x0 (centre=True): a point of the input space, length n."""

    centre: bool


@dataclass(frozen=True)
class OneHot:
    """onehot(i): the i-th unit vector of the output space."""

    index: IndexTerm


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Param:
    """A named parameter; its value is in the declaration's parameter table."""

    name: str


@dataclass(frozen=True)
class DataConst:
    """A constant known once the data is: `dim` (n) or `diameter` (sqrt(n) for [0,1]^n)."""

    name: str


@dataclass(frozen=True)
class Text:
    """A string value: a file path (e.g. a generator module)."""

    value: str


@dataclass(frozen=True)
class Index:
    vector: "Term"
    index: IndexTerm


@dataclass(frozen=True)
class Arith:
    op: str  # + - * /
    left: "Term"
    right: "Term"
    pos: Pos = _pos()


@dataclass(frozen=True)
class Neg:
    operand: "Term"


@dataclass(frozen=True)
class Norm:
    vector: "Term"
    p: float  # 1.0, 2.0 or INF
    pos: Pos = _pos()


@dataclass(frozen=True)
class Abs:
    operand: "Term"


@dataclass(frozen=True)
class Softmax:
    vector: "Term"


@dataclass(frozen=True)
class Reduce:
    """max/min of `body` over class indices `var`, optionally all but `exclude`."""

    kind: str  # max / min
    var: str
    exclude: IndexTerm | None
    body: "Term"


@dataclass(frozen=True)
class Extremum:
    """max(a, b, ...) / min(a, b, ...) of real terms."""

    kind: str
    items: tuple["Term", ...]


Term = Union[Net, Input, OneHot, Const, Param, DataConst, Text, Index, Arith, Neg, Norm, Abs,
             Softmax, Reduce, Extremum]


# --- formulas (negation normal form) -------------------------------------------------------

NEGATE = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!=", "!=": "=="}


@dataclass(frozen=True)
class Compare:
    """An atom `left op right` over real terms."""

    op: str
    left: Term
    right: Term
    pos: Pos = _pos()


@dataclass(frozen=True)
class IndexCompare:
    """`i == j` / `i != j` over class indices."""

    op: str
    left: IndexTerm
    right: IndexTerm
    pos: Pos = _pos()


@dataclass(frozen=True)
class Truth:
    value: bool


@dataclass(frozen=True)
class And:
    items: tuple["Formula", ...]


@dataclass(frozen=True)
class Or:
    items: tuple["Formula", ...]


@dataclass(frozen=True)
class IndexQuant:
    """forall/exists over the class indices 0..m-1, except `exclude` when given."""

    kind: str  # forall / exists
    var: str
    exclude: IndexTerm | None
    body: "Formula"


Formula = Union[Compare, IndexCompare, Truth, And, Or, IndexQuant]


# --- declarations --------------------------------------------------------------------------

# A unit is a pair of exponents (input, output): input distance (1, 0), logit (0, 1),
# Lipschitz ratio output/input (-1, 1), dimensionless (0, 0).
Unit = tuple[int, int]
UNIT_NAMES = {"input": (1, 0), "output": (0, 1)}


@dataclass(frozen=True)
class ParamDecl:
    name: str
    type: str  # real nonneg pos prob int count norm path
    unit: Unit | None
    value: float | str | DataConst
    pos: Pos = _pos()


@dataclass(frozen=True)
class Ball:
    """The ball B_p(x0, radius)."""

    radius: Term
    p: float


@dataclass(frozen=True)
class Box:
    """The input domain [low, high]^n."""

    low: Term
    high: Term


UNIT_BOX = Box(Const(0.0), Const(1.0))


@dataclass(frozen=True)
class Centres:
    """The domain of centres R: `train`, `test` or a data file, maybe only correctly classified
    points, maybe only the first `count`."""

    source: str
    is_file: bool = False
    correct_only: bool = False
    count: int | None = None


DEFAULT_CENTRES = Centres("test")


@dataclass(frozen=True)
class Property:
    """forall x0 in centres: forall x in ball ∩ domain: body."""

    name: str
    params: tuple[ParamDecl, ...]
    centres: Centres
    domain: Box
    var: str
    ball: Ball
    body: Formula
    nonlinear: tuple[str, ...] = ()  # why the body is not piecewise linear (empty: it is)
    pos: Pos = _pos()
    # the text the body's positions refer to (a lang.errors.Source), for run-time errors
    source: object = field(default=None, compare=False, repr=False)

    @property
    def piecewise_linear(self) -> bool:
        """Is the body piecewise linear in x and f(x)? (Marabou and VNN-LIB need it.)"""
        return not self.nonlinear

    def value(self, name: str) -> float | str | DataConst:
        return _lookup(self.params, name)


@dataclass(frozen=True)
class UniformBall:
    ball: Ball


@dataclass(frozen=True)
class Gaussian:
    sigma: Term


@dataclass(frozen=True)
class Manifold:
    """dec(enc(x0) + N(0, sigma^2)) from a user's generator module (seed 000 eq. 13),
    restricted to `ball` when given."""

    generator: Term  # Text or a path-typed Param
    sigma: Term
    ball: Ball | None


Kernel = Union[UniformBall, Gaussian, Manifold]


@dataclass(frozen=True)
class Weight:
    """G: 1, the data density p(x), or p(x) / divide_by (seed 000 Example 4)."""

    density: bool
    divide_by: str | None = None


@dataclass(frozen=True)
class Family:
    """`var ~ uniform(low, high)`: the kernel's parameter drawn with that density (Def. 4)."""

    var: str
    low: Term
    high: Term


@dataclass(frozen=True)
class Score:
    """The Q,H,G robustness score of Tibo et al. (Definitions 1-4)."""

    name: str
    params: tuple[ParamDecl, ...]
    centres: Centres
    domain: Box
    kernel: Kernel
    label_conditioned: bool
    H: str  # indicator / id
    G: Weight
    families: tuple[Family, ...]
    pos: Pos = _pos()

    def value(self, name: str) -> float | str | DataConst:
        return _lookup(self.params, name)


def _lookup(params: tuple[ParamDecl, ...], name: str) -> float | str | DataConst:
    for decl in params:
        if decl.name == name:
            return decl.value
    raise KeyError(name)


class DeclarationNotFound(SpecrobError, KeyError):
    """`spec[name]` for a name the spec does not declare (the message names the closest)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Spec:
    """A checked spec file: its properties and scores, in file order."""

    path: str
    properties: tuple[Property, ...]
    scores: tuple[Score, ...]

    def __getitem__(self, name: str) -> Property | Score:
        """The declaration called `name`. Raises DeclarationNotFound (a KeyError) naming the
        spec and the closest name."""
        for decl in (*self.properties, *self.scores):
            if decl.name == name:
                return decl
        from specrob.lang.errors import did_you_mean
        guess = did_you_mean(str(name), self.names)
        raise DeclarationNotFound(
            f"no property or score '{name}' in {self.path}"
            + (f"; did you mean '{guess}'?" if guess else "")
            + f" (it declares: {', '.join(self.names) or 'nothing'})")

    @property
    def names(self) -> list[str]:
        return [d.name for d in (*self.properties, *self.scores)]

    def loss(self, model, **options):
        """`specrob.constraint_loss(spec, model, **options)`: a callable `(x, y) -> constraint
        loss` of one property (default: the first), for a training loop of your own. The
        language knows no back end: the function is the one `specrob.api` registers in
        LOSS_FACTORY when specrob is imported."""
        if LOSS_FACTORY[0] is None:
            raise RuntimeError("import specrob (its API provides the constraint loss)")
        return LOSS_FACTORY[0](self, model, **options)


# set by specrob.api at import: (spec, model, **options) -> constraint loss (dependency
# inversion: the language offers spec.loss without importing the torch back end)
LOSS_FACTORY: list = [None]
