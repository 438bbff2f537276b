"""Non-finite values in a compiled property: found after an evaluation and reported at the
sub-expression of the spec that produced them (file:line:col), with a way out.

A NaN in a loss has no gradient and a NaN in a comparison is silently false, so a run that
meets one would train on nothing or report violations that are not there. Every loss and
every crisp evaluation is checked; the culprit is the innermost term whose value is not
finite although everything inside it is (e.g. `a / norm(x - x0)` at x = x0).
"""
from __future__ import annotations

import torch

from specrob.lang import ir
from specrob.lang.ast import NOWHERE
from specrob.lang.errors import SpecError, Source
from specrob.lang.walk import children, mentions


class NonFiniteError(SpecError):
    """A loss or an estimate that is NaN or infinite, located in the spec."""


def _bad(value: torch.Tensor, nan_only: bool) -> torch.Tensor:
    return torch.isnan(value) if nan_only else ~torch.isfinite(value)


def _rows(value: torch.Tensor, bad: torch.Tensor, batch: int) -> torch.Tensor:
    """Per point (batch row): does the value have a bad entry there?"""
    if value.dim() == 0 or value.shape[0] != batch:
        return bad.reshape(-1).any().expand(batch)
    return bad.reshape(batch, -1).any(-1)


def culprit(terms, memo: dict, batch: int, nan_only: bool = False):
    """The innermost term whose memoised value is not finite while its sub-terms' are:
    (term, rows where it is not finite), or None."""
    by_term: dict = {}
    for (term, _scope), slot in terms.slots.items():
        value = memo.get(slot)
        if torch.is_tensor(value) and value.is_floating_point():
            by_term.setdefault(term, []).append(value)
    bad_terms = {t: vs for t, vs in by_term.items()
                 if any(_bad(v, nan_only).any() for v in vs)}

    def has_bad_inside(node) -> bool:
        return any(c in bad_terms or has_bad_inside(c) for c in children(node))

    for term, values in bad_terms.items():
        if not has_bad_inside(term):
            rows = torch.zeros(batch, dtype=torch.bool, device="cpu")
            for v in values:
                rows |= _rows(v, _bad(v, nan_only), batch).cpu()
            return term, rows
    return None


def _text(t) -> str:
    from specrob.lang.printer import term
    try:
        return term(t)
    except Exception:  # pragma: no cover - a term the printer does not know
        return repr(t)


def _enclosing(body, target):
    """The first atom of the body that contains `target` (for its position)."""
    found = []

    def visit(node):
        if isinstance(node, ir.Compare) and mentions(node, lambda n: n == target):
            found.append(node)
            return
        for c in children(node):
            visit(c)
    visit(body)
    return found[0] if found else None


def nonfinite_error(prop: ir.Property, terms, memo: dict, batch: int, what: str,
                    nan_only: bool = False) -> NonFiniteError:
    """The error for a non-finite `what` (e.g. "the constraint loss") of `prop`."""
    source = prop.source if isinstance(prop.source, Source) else Source("<spec>", "")
    found = culprit(terms, memo, batch, nan_only)
    pos, hint = prop.pos, None
    if found is None:
        message = f"{what} of property {prop.name} is not finite (NaN or inf)"
    else:
        term, rows = found
        count = int(rows.sum())
        where = f"at {count} of {batch} points"
        at_centre = ""
        if isinstance(term, ir.Arith) and term.op == "/":
            right = _text(term.right)
            if (mentions(term.right, lambda n: n == ir.Input(False))
                    and mentions(term.right, lambda n: n == ir.Input(True))):
                at_centre = ", which is 0 at x = x0"
            message = (f"{what} of property {prop.name} is not finite: division by {right}"
                       f"{at_centre} ({where})")
            hint = ("x = x0 at eps = 0 and where a search starts at the centre; guard the "
                    "division or multiply it out (e.g. `a <= L * b` instead of `a / b <= L`), "
                    "and train with a random start (--search pgd) and eps > 0")
        elif isinstance(term, ir.Net):
            message = (f"{what} of property {prop.name} is not finite: the network's output "
                       f"{_text(term)} is NaN or inf ({where})")
            hint = "check the network and its weights (a diverged training run?)"
        else:
            message = (f"{what} of property {prop.name} is not finite: {_text(term)} is NaN "
                       f"or inf ({where})")
            hint = "guard the expression so that it is defined on the whole ball"
        pos = getattr(term, "pos", NOWHERE)
        if pos == NOWHERE:
            atom = _enclosing(prop.body, term)
            pos = atom.pos if atom is not None and atom.pos != NOWHERE else prop.pos
    err = source.error(message, None if pos == NOWHERE else pos, hint=hint)
    return NonFiniteError(err.message, err.path, err.line, err.col, err.end_col,
                          err.source_line, err.expected, err.hint)
