"""The one error type the language front end raises, formatted like a compiler message."""
from __future__ import annotations

from specrob.errors import SpecrobError

import difflib
from dataclasses import dataclass
from typing import Iterable


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate to a misspelt word, or None."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _printable(text: str) -> str:
    """Control characters (terminal escapes) shown as \\xNN, so a quoted line cannot drive
    the user's terminal."""
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)


@dataclass
class SpecError(SpecrobError):
    """A malformed spec: where (file:line:col), what went wrong, what was expected, a hint.

    Lines and columns are 1-based. `source_line` is the offending line of text, shown with a
    caret under columns [col, end_col).
    """

    message: str
    path: str = "<spec>"
    line: int = 1
    col: int = 1
    end_col: int | None = None
    source_line: str | None = None
    expected: str | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        out = [f"{self.path}:{self.line}:{self.col}: error: {_printable(self.message)}"]
        if self.source_line is not None:
            text = _printable(self.source_line.rstrip("\n").replace("\t", " "))
            width = max(1, (self.end_col or self.col + 1) - self.col)
            width = min(width, max(1, len(text) - self.col + 1))
            out.append(f"    {text}")
            out.append("    " + " " * (self.col - 1) + "^" * width)
        if self.expected:
            out.append(f"  expected: {self.expected}")
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under; builds located errors."""

    path: str
    text: str

    def line_text(self, line: int) -> str | None:
        lines = self.text.splitlines()
        return lines[line - 1] if 1 <= line <= len(lines) else None

    def error(self, message: str, pos=None, *, expected: str | None = None,
              hint: str | None = None) -> SpecError:
        line, col, end_col = 1, 1, None
        if pos is not None:
            line, col = pos.line, pos.col
            end_col = pos.end_col if pos.end_line == pos.line else None
        return SpecError(message, path=self.path, line=line, col=col, end_col=end_col,
                         source_line=self.line_text(line), expected=expected, hint=hint)
