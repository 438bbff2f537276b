"""Text -> AST (`ast.SpecFile`), with lark's errors turned into located `SpecError`s."""
from __future__ import annotations

import math

from functools import cache
from typing import cast

import lark
from lark import Lark, Token, Transformer, v_args
from lark.lexer import PatternStr

from specrob.lang import ast
from specrob.lang.errors import Source, SpecError, did_you_mean
from specrob.resources import grammar_path

_NAMED_TERMINALS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": 'a "string"',
    "CMP": "a comparison (<= < >= > ==)",
    "NEQ": "'!='",
    "FORALL": "'forall'",
    "EXISTS": "'exists'",
    "$END": "end of file",
}


@cache
def _lark() -> Lark:
    return Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                propagate_positions=True, maybe_placeholders=True)


@cache
def _terminal_texts() -> dict[str, str]:
    texts = dict(_NAMED_TERMINALS)
    for term in _lark().terminals:
        if isinstance(term.pattern, PatternStr) and term.name not in texts:
            texts[term.name] = f"'{term.pattern.value}'"
    return texts


def keywords() -> set[str]:
    """Reserved words of the language (they cannot be names)."""
    return {t[1:-1] for t in _terminal_texts().values()
            if t.startswith("'") and t[1:-1].isalpha()}


def _describe(expected: set[str]) -> str:
    texts = _terminal_texts()
    def rank(w: str) -> tuple:  # descriptions, then keywords, then punctuation
        return (w.startswith("'"), not w[1:2].isalpha(), w)

    words = sorted({texts.get(e, e) for e in expected}, key=rank)
    if len(words) > 10:
        words = words[:10] + ["..."]
    return ", ".join(words)


def parse(text: str, path: str = "<spec>") -> ast.SpecFile:
    """Parse spec text into an AST; raises SpecError (never a lark exception)."""
    source = Source(path, text)
    try:
        tree = _lark().parse(text)
        items = _ToAst().transform(tree)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, source, text) from None
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, _Misplaced):
            bad = exc.orig_exc
            raise source.error(bad.message, bad.pos, expected=bad.expected,
                               hint=bad.hint) from None
        if isinstance(exc.orig_exc, RecursionError):
            raise too_deep(source) from None
        raise
    except RecursionError:
        raise too_deep(source) from None
    imports = tuple(i for i in items if isinstance(i, ast.Import))
    decls = tuple(i for i in items if not isinstance(i, ast.Import))
    return ast.SpecFile(imports, decls)


class _Misplaced(Exception):
    """A grammatical sentence that the language still refuses (a clause given twice, a
    reserved word as a name): raised inside the transformer, reported by `parse`."""

    def __init__(self, message: str, pos: ast.Pos, expected: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.message, self.pos, self.expected, self.hint = message, pos, expected, hint


# the nesting limit of a checked declaration's IR (e.g. a sum of 200 terms, 200 nested
# operators): every back end walks the IR recursively within Python's default limit
MAX_DEPTH = 200


def too_deep(source: Source) -> SpecError:
    """The error for a spec nested beyond what the parser and checker can walk: located at the
    point of deepest nesting (parentheses, or the longest run of prefix operators)."""
    import re
    depth = best = 0
    where = 0
    for i, ch in enumerate(source.text):
        if ch == "(":
            depth += 1
            if depth > best:
                best, where = depth, i
        elif ch == ")":
            depth = max(0, depth - 1)
    runs = list(re.finditer(r"(?:(?:\bnot\b|-|\bforall\b[^:]*:|\bimplies\b)\s*){20,}",
                            source.text))
    if runs:
        longest = max(runs, key=lambda m: len(m.group(0)))
        if len(longest.group(0)) > best:
            where = longest.start()
    line = source.text.count("\n", 0, where) + 1
    col = where - (source.text.rfind("\n", 0, where) + 1) + 1
    return source.error(f"the expression nests too deeply (more than about {MAX_DEPTH} "
                        f"levels)", ast.Pos(line, col, line, col + 1),
                        hint="split it into parameters or simpler properties")


def _syntax_error(exc: lark.exceptions.UnexpectedInput, source: Source, text: str) -> SpecError:
    expected_names: set[str] = set(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    expected = _describe(expected_names) if expected_names else None
    line, col = getattr(exc, "line", 1), getattr(exc, "column", 1)
    if isinstance(exc, lark.exceptions.UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        hint = None
        kws = [_terminal_texts()[e][1:-1] for e in expected_names
               if _terminal_texts().get(e, "").startswith("'")]
        if tok.type == "NAME":
            guess = did_you_mean(str(tok), [k for k in kws if k.isalpha()])
            if guess:
                hint = f"did you mean '{guess}'?"
        elif str(tok) in keywords() and "NAME" in expected_names:
            hint = f"'{tok}' is a reserved word and cannot be used as a name"
        elif str(tok) == "=" and "CMP" in expected_names:
            hint = "use '==' to compare; '=' gives a parameter its value"
        elif str(tok) in ("&&", "||", "!"):
            hint = "write and, or, not"
        pos = ast.Pos(tok.line, tok.column, tok.end_line or tok.line,
                      tok.end_column or tok.column + len(str(tok)))
        return source.error(f"unexpected {_token_text(tok)}", pos, expected=expected, hint=hint)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream]
        pos = ast.Pos(line, col, line, col + 1)
        hint = None
        if char == "'":
            hint = 'strings use double quotes: "file.rspec"'
        elif char == "=":
            hint = "use '==' to compare"
        return source.error(f"unexpected character {char!r}", pos, expected=expected, hint=hint)
    # End of input: the file stops in the middle of a declaration.
    lines = text.splitlines() or [""]
    last = len(lines)
    pos = ast.Pos(last, len(lines[-1]) + 1, last, len(lines[-1]) + 2)
    return source.error("unexpected end of file (the spec is truncated)", pos, expected=expected)


def _token_text(tok: Token) -> str:
    if tok.type == "NAME":
        return f"name '{tok}'"
    if tok.type == "NUMBER":
        return f"number {tok}"
    if tok.type == "STRING":
        return f"string {tok}"
    return f"'{tok}'"


def _pos(meta) -> ast.Pos:
    if getattr(meta, "empty", False):
        return ast.NOWHERE
    return ast.Pos(meta.line, meta.column, meta.end_line, meta.end_column)


def _tpos(tok: Token) -> ast.Pos:
    # lark's lexer sets every position; they are Optional only for tokens built by hand
    line, col, end_line, end_col = (cast(int, v) for v in
                                    (tok.line, tok.column, tok.end_line, tok.end_column))
    return ast.Pos(line, col, end_line, end_col)


def _number(tok: Token) -> ast.Num:
    value = float(tok)
    if math.isinf(value):  # a literal beyond float64 (1e400): never silently infinite
        raise _Misplaced(f"the number {tok} is too large (it overflows to infinity)",
                         _tpos(tok), expected="a finite number, or inf",
                         hint="write inf if you mean an unbounded value")
    return ast.Num(value, str(tok), _tpos(tok))


class _Params(tuple):
    """The parameter list of a declaration (distinct from other tuples in a rule's children)."""


class _Domain(tuple):
    """A `domain:` clause: (expr,)."""

    pos: ast.Pos = ast.NOWHERE


def _present(items) -> list:
    return [i for i in items if i is not None]


def _bin_rule(op: str):
    """The transformer rule for one of the four arithmetic operators."""
    def rule(self, meta, left, right):
        return ast.BinOp(op, left, right, _pos(meta))
    return rule


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    """lark tree -> ast dataclasses."""

    def start(self, meta, *items):
        return list(items)

    def import_stmt(self, meta, s):
        return ast.Import(str(s)[1:-1], _pos(meta))

    # declarations
    def _clauses(self, items):
        centres = [i for i in items if isinstance(i, ast.Centres)]
        domains = [i for i in items if isinstance(i, _Domain)]
        if len(centres) > 1:
            raise _Misplaced("a second 'centres:' clause", centres[1].pos,
                             hint="a declaration has one centres clause: remove one")
        if len(domains) > 1:
            raise _Misplaced("a second 'domain:' clause", domains[1].pos,
                             hint="a declaration has one domain clause: remove one")
        return (centres[0] if centres else None), (domains[0][0] if domains else None)

    def property_def(self, meta, name, *rest):
        params = next((tuple(r) for r in rest if isinstance(r, _Params)), ())
        body = [r for r in rest if isinstance(r, ast.Expr)]
        centres, domain = self._clauses(rest)
        return ast.PropertyDef(str(name), params, centres, domain, body[0], _pos(meta))

    def score_def(self, meta, name, *rest):
        params = next((tuple(r) for r in rest if isinstance(r, _Params)), ())
        centres, domain = self._clauses(rest)
        return ast.ScoreDef(str(name), params,
                            tuple(r for r in rest if isinstance(r, ast.Setting)),
                            tuple(r for r in rest if isinstance(r, ast.Family)),
                            centres, domain, _pos(meta))

    def _instance(self, kind, meta, name, template, rest):
        kwargs = tuple(r for r in rest if isinstance(r, ast.Kwarg))
        centres, domain = self._clauses(rest)
        return ast.Instance(kind, str(name), str(template), kwargs,
                            tuple(r for r in rest if isinstance(r, ast.Setting)),
                            tuple(r for r in rest if isinstance(r, ast.Family)),
                            centres, domain, _pos(meta), _tpos(template))

    def property_inst(self, meta, name, template, *rest):
        return self._instance("property", meta, name, template, rest)

    def score_inst(self, meta, name, template, *rest):
        return self._instance("score", meta, name, template, rest)

    def setting(self, meta, name, value, given=None):
        g_name, g_pos = given if given is not None else (None, ast.NOWHERE)
        return ast.Setting(str(name), value, g_name, _pos(meta), g_pos)

    def given(self, meta, name):
        return (str(name), _tpos(name))

    def family(self, meta, name, dist):
        return ast.Family(str(name), dist, _pos(meta))

    def params(self, meta, *items):
        return _Params(_present(items))

    def param(self, meta, name, *rest):
        if str(name) in keywords():
            raise _Misplaced(f"'{name}' is a reserved word and cannot name a parameter",
                             _tpos(name), expected="a name that is not a keyword",
                             hint=f"rename it, e.g. {name}_")
        ptype = next((r for r in rest if isinstance(r, ast.PType)), None)
        default = next((r for r in rest if isinstance(r, ast.Expr)), None)
        return ast.Param(str(name), ptype, default, _pos(meta))

    def ptype(self, meta, name, unit=None):
        return ast.PType(str(name), unit, _pos(meta))

    def unit(self, meta, num, den=None):
        return (str(num), None if den is None else str(den))

    def kwarg(self, meta, name, value):
        return ast.Kwarg(str(name), value, _pos(meta))

    def centres(self, meta, source, *rest):
        where = next((r for r in rest if isinstance(r, tuple) and r[0] == "where"), None)
        count = next((r for r in rest if isinstance(r, tuple) and r[0] == "count"), None)
        text, is_file = source
        return ast.Centres(text, is_file, where[1] if where else None,
                           count[1] if count else None, count[2] if count else None,
                           _pos(meta), where[2] if where else ast.NOWHERE,
                           count[3] if count else ast.NOWHERE)

    def source(self, meta, tok):
        return (str(tok)[1:-1], True) if tok.type == "STRING" else (str(tok), False)

    def where(self, meta, name):
        return ("where", str(name), _tpos(name))

    def count(self, meta, num, word):
        return ("count", _number(num), str(word), _tpos(word))

    def domain(self, meta, expr):
        out = _Domain((expr,))
        out.pos = _pos(meta)
        return out

    # expressions
    def input_quant(self, meta, _forall, var, set_, body):
        return ast.InputQuant(str(var), set_, body, _pos(meta), _tpos(var))

    def index_quant(self, meta, kind, var, *rest):
        if len(rest) == 3:
            _neq, exclude, body = rest
        else:
            exclude, body = None, rest[-1]
        return ast.IndexQuant(str(kind), str(var), exclude, body, _pos(meta))

    def implies(self, meta, left, right):
        return ast.Implies(left, right, _pos(meta))

    def or_expr(self, meta, *items):
        return ast.Logic("or", items, _pos(meta))

    def and_expr(self, meta, *items):
        return ast.Logic("and", items, _pos(meta))

    def not_(self, meta, operand):
        return ast.Not(operand, _pos(meta))

    def comparison(self, meta, left, op, right):
        return ast.Compare(str(op), left, right, _pos(meta), _tpos(op))

    neq = comparison

    add, sub, mul, div = _bin_rule("+"), _bin_rule("-"), _bin_rule("*"), _bin_rule("/")

    def neg(self, meta, operand):
        return ast.Neg(operand, _pos(meta))

    def index(self, meta, base, idx):
        return ast.Subscript(base, idx, _pos(meta))

    def number(self, meta, tok):
        return _number(tok)

    def string(self, meta, tok):
        return ast.Str(str(tok)[1:-1], _tpos(tok))

    def name(self, meta, tok):
        return ast.Name(str(tok), _tpos(tok))

    def true(self, meta):
        return ast.Bool(True, _pos(meta))

    def false(self, meta):
        return ast.Bool(False, _pos(meta))

    def call(self, meta, func, *args):
        return ast.Call(str(func), tuple(_present(args)), _pos(meta), _tpos(func))

    def reduce(self, meta, func, body, var, *rest):
        exclude = rest[1] if len(rest) == 2 else None
        return ast.Reduce(str(func), body, str(var), exclude, _pos(meta))


