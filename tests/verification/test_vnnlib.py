"""VNN-LIB export, read back by an independent parser (the PyPI `vnnlib` package's
VNN-COMP-compatible reader)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import specrob
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder
from specrob.verification.vnnlib import VnnlibExportError, vnnlib_text

from vnnlib.compat import read_vnnlib_simple  # noqa: E402 - the test extra installs it


def parse(text: str, tmp_path, n: int, m: int):
    path = tmp_path / "q.vnnlib"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_vnnlib_simple(str(path), n, m)


@pytest.mark.parametrize("prop", ["CR(eps = 0.05)", "SR(eps = 0.05, delta = 1)",
                                  "CR(eps = 0.05, p = 2)", "SCR(eps = 0.05)"])
def test_exported_query_reads_back_as_the_negated_property(tmp_path, prop):
    n, m = 4, 3
    x0 = np.array([0.2, 0.5, 0.99, 0.0])
    query = Encoder(specrob.loads(f"property P = {prop}\n")["P"], n, m).query(
        Centre(x0, 1, np.array([0.5, 1.0, -0.3])))
    ((box, disjuncts),) = parse(vnnlib_text(query, "test"), tmp_path, n, m)
    assert np.allclose(np.array(box), np.stack([query.region.box_low, query.region.box_high], 1))
    rng = np.random.default_rng(0)
    for z in rng.normal(size=(500, m)) * 2:
        counterexample = any(np.all(A @ z <= b.flatten() + 1e-12) for A, b in disjuncts)
        assert counterexample == (not q.holds(query.body, z, x0))


def test_input_norms_cannot_be_exported():
    query = Encoder(specrob.loads("property P = LR()\n")["P"], 4, 3).query(
        Centre(np.zeros(4), 0, np.zeros(3)))
    with pytest.raises(VnnlibExportError, match="linear constraints on the outputs"):
        vnnlib_text(query)
