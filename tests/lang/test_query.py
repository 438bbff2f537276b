"""The per-centre query IR (`lang/query.py`): its disjunctive normal form is the formula
(checked point by point against `holds`, the oracle), and the size limit is honoured."""
from __future__ import annotations

import numpy as np

from specrob.lang import query as q


def _atom(rng, m: int) -> q.Atom:
    out = rng.normal(size=(1, m))
    return q.Atom(q.Affine(out, np.zeros((1, 2)), rng.normal(size=1)), (),
                  str(rng.choice([">", ">=", "<", "<="])))


def _formula(rng, m: int, depth: int) -> q.Formula:
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return q.Const(bool(rng.random() < 0.5)) if roll < 0.05 else _atom(rng, m)
    kind = q.And if roll < 0.65 else q.Or
    return kind(tuple(_formula(rng, m, depth - 1) for _ in range(rng.integers(1, 4))))


def test_the_dnf_has_the_formula_s_truth_value_everywhere():
    rng = np.random.default_rng(0)
    for _ in range(200):
        f = _formula(rng, 3, 3)
        disjuncts = q.dnf(f, 10_000)
        assert disjuncts is not None
        for z in rng.normal(size=(20, 3)):
            x = np.zeros(2)
            expected = q.holds(f, z, x)
            got = any(all(q.holds(a, z, x) for a in conj) for conj in disjuncts)
            assert got == expected


def test_a_dnf_over_the_limit_is_none():
    rng = np.random.default_rng(1)
    big = q.And(tuple(q.Or((_atom(rng, 2), _atom(rng, 2))) for _ in range(12)))  # 4096
    assert q.dnf(big, 4096) is not None and q.dnf(big, 4095) is None
