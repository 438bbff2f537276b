"""Files shipped with specrob: the grammar, the standard library of specs, the example models.

In a wheel they live inside the package (`specrob/grammars`, `specrob/specs`,
`specrob/examples`); in a source checkout they are the repository's top-level `grammars/`,
`specs/` and `examples/`.
"""
from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"specrob is installed without its '{name}' folder")


@cache
def grammar_path() -> Path:
    return _locate("grammars") / "rspec.lark"


@cache
def specs_dir() -> Path:
    """The standard library of properties and scores (`specs/*.rspec`)."""
    return _locate("specs")


@cache
def examples_dir() -> Path:
    """The example model files (`examples/*.py`, read by `network.model_file`), among them the
    networks the reproductions train."""
    return _locate("examples")
