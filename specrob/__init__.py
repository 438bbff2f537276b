"""specrob: robustness specifications of neural-network classifiers, written once in .rspec
and used to train, evaluate and verify."""
from __future__ import annotations

from pathlib import Path

from specrob.lang.errors import SpecError
from specrob.lang.ir import Property, Score, Spec

__version__ = "0.1.0"
__all__ = ["load", "loads", "Spec", "Property", "Score", "SpecError", "__version__"]


def load(path: str | Path, **overrides) -> Spec:
    """Read and check a spec file; keyword arguments override parameters (like --set).

    >>> spec = specrob.load("specs/cr.rspec", eps=0.05)
    >>> spec["CR"].value("eps")
    0.05
    """
    from specrob.lang.loader import load as _load, overrides_from_api
    return _load(path, overrides_from_api(overrides))


def loads(text: str, path: str = "<spec>", base_dir: str | Path | None = None,
          **overrides) -> Spec:
    """Check spec text; imports are resolved against `base_dir`."""
    from specrob.lang.loader import load_text, overrides_from_api
    return load_text(text, path, overrides_from_api(overrides), base_dir=base_dir)
