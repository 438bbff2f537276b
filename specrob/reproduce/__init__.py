"""Reproductions of the seed papers' experiments: `specrob reproduce <paper>`.

One package per paper, each with `run(options: Options, command: str) -> Path` (the page it
wrote) and one module per job: `experiment` (budgets, networks, training and measurements -> a
plain results dict), `claims` (the paper's numbers and claims, checked against the results)
and `page` (the markdown page and figures); `common.run_paper` chains them. Add a paper by
adding such a package and a line to `PAPERS`. `common` holds what the papers share.
"""
from __future__ import annotations

import importlib
import sys
import types

PAPERS: dict[str, str] = {
    "casadio": "Casadio et al. 2022, seed 003: constraint-driven training and evaluation",
    "shaham": "Shaham et al. 2015, seed 002: robust optimisation (l_1, l_2, l_inf)",
    "tibo": "Tibo et al., seeds 000/001: co-training with an adversarial generator, margins",
    "lassance": "Lassance et al., seed 004: local Lipschitz robustness alpha_lim(r)",
    "tibo-transfer": "Tibo et al., seed 001 section 4: transfer by paired autoencoders",
    "tibo-manifold": "Tibo et al., seed 000 section 7: on-manifold robustness R4 (Tables 4-5)",
    "certified": "issue 17: certified training (IBP, CROWN-IBP) judged by constraint "
                 "satisfaction",
}


def paper_module(name: str):
    """The module that reproduces paper `name` (one of PAPERS)."""
    if name not in PAPERS:
        raise KeyError(name)
    return importlib.import_module(f"specrob.reproduce.{name.replace('-', '_')}")


class _Package(types.ModuleType):
    """This package, callable as the function `specrob.reproduce` it shares its name with.

    Importing a submodule makes Python set `specrob.reproduce` to this package, over the
    public function `specrob.api.reproduce` that `specrob/__init__.py` exports under the same
    name: after a first `specrob.reproduce("casadio")` (which imports this package), a second
    call would find a module. Calling the package calls the function, so both stay usable."""

    def __call__(self, *args, **kwargs):
        from specrob.api import reproduce
        return reproduce(*args, **kwargs)


sys.modules[__name__].__class__ = _Package
