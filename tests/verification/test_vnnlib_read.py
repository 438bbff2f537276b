"""VNN-LIB input: the exporter's files read back, the VNN-COMP 2021 mnistfc properties, located
errors for malformed files."""
from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

import specrob
from specrob.lang import query as q
from specrob.lang.encode import Centre, Encoder
from specrob.verification.vnnlib import vnnlib_text
from specrob.verification.vnnlib_read import VnnlibError, read_vnnlib

from tests.conftest import SHARED

MNISTFC = SHARED / "benchmarks" / "vnncomp2021-mnistfc"


def same_body(a: q.Formula, b: q.Formula, m: int, x: np.ndarray, draws: int = 500) -> None:
    rng = np.random.default_rng(0)
    for z in rng.normal(size=(draws, m)) * 2:
        assert q.holds(a, z, x) == q.holds(b, z, x)


@pytest.mark.parametrize("prop", ["CR(eps = 0.05)", "SR(eps = 0.05, delta = 1)",
                                  "CR(eps = 0.05, p = 2)", "SCR(eps = 0.05)"])
def test_exported_files_read_back_as_the_same_query(tmp_path, prop):
    n, m = 4, 3
    x0 = np.array([0.2, 0.5, 0.99, 0.0])
    query = Encoder(specrob.loads(f"property P = {prop}\n")["P"], n, m).query(
        Centre(x0, 1, np.array([0.5, 1.0, -0.3])))
    path = tmp_path / "q.vnnlib"
    path.write_text(vnnlib_text(query, "test", label=1))
    (back,) = read_vnnlib(path)
    assert np.array_equal(back.region.box_low, query.region.box_low)
    assert np.array_equal(back.region.box_high, query.region.box_high)
    assert back.classes == m
    same_body(back.body, query.body, m, x0)


def test_exporter_writes_the_subset_vnncomp_tools_parse(tmp_path):
    query = Encoder(specrob.loads("property P = CR(eps = 0.05)\n")["P"], 4, 3).query(
        Centre(np.full(4, 0.5), 2, np.zeros(3)))
    text = vnnlib_text(query, "centre 0", label=2)
    assert "; label = 2" in text and "eps = 0.05" in text
    assert "(assert (or\n    (and (>= Y_0 Y_2))\n    (and (>= Y_1 Y_2))\n))" in text
    assert "(+ " not in text and "linear combinations" not in text
    # a bound on one output is written as (<= Y_j c), a general row as a sum, and said so
    m, n = 3, 2
    bound = q.Atom(q.Affine(np.array([[0.0, 2.0, 0.0]]), np.zeros((1, n)), np.array([-1.0])),
                   (), "<")  # 2 Y_1 - 1 < 0: the property; the violation 2 Y_1 - 1 >= 0
    general = q.Atom(q.Affine(np.array([[1.0, 1.0, -1.0]]), np.zeros((1, n)), np.array([0.5])),
                     (), ">")
    box = q.InputRegion.box(np.zeros(n), np.ones(n))
    text = vnnlib_text(q.Query(q.And((bound, general)), box, m))
    assert "(>= Y_1 0.5)" in text and "(<= (+ (* 1.0 Y_0) (* 1.0 Y_1) (* -1.0 Y_2) 0.5) 0.0)" \
        in text and "linear combinations" in text
    path = tmp_path / "p.vnnlib"
    path.write_text(text)
    (back,) = read_vnnlib(path)
    same_body(back.body, q.And((bound, general)), m, np.zeros(n))


def _expected_box(path):
    """The box of a mnistfc file, read with regular expressions (independently)."""
    text = gzip.open(path, "rt").read()
    low, high = np.full(784, np.nan), np.full(784, np.nan)
    for op, i, v in re.findall(r"\(assert \((<=|>=) X_(\d+) ([^)]+)\)\)", text):
        (high if op == "<=" else low)[int(i)] = float(v)
    label = int(re.search(r"label: (\d+)", text).group(1))
    return low, high, label


def test_reads_every_mnistfc_property():
    files = sorted(MNISTFC.glob("prop_*.vnnlib.gz"))
    assert len(files) == 30
    for path in files:
        (query,) = read_vnnlib(path)
        assert query.region.box_low.shape == (784,) and query.classes == 10
        assert isinstance(query.body, q.And) and len(query.body.items) == 9
    # one fully checked: 784 bounds, 9 disjuncts "Y_j >= Y_label"
    path = MNISTFC / "prop_0_0.03.vnnlib.gz"
    (query,) = read_vnnlib(path)
    low, high, label = _expected_box(path)
    assert not np.isnan(low).any() and not np.isnan(high).any()
    assert np.array_equal(query.region.box_low, low)
    assert np.array_equal(query.region.box_high, high)
    assert np.all(high - low <= 0.06 + 1e-7)  # the bounds are float32 values
    others = [j for j in range(10) if j != label]
    for atom, j in zip(query.body.items, others):  # the property: Y_j < Y_label
        expected = np.zeros(10)
        expected[j], expected[label] = 1.0, -1.0
        assert atom.op == "<" and np.array_equal(atom.lin.out[0], expected)
        assert atom.lin.const[0] == 0.0 and not atom.lin.uses_inputs()
    z = np.zeros(10)
    z[label] = 1.0
    assert q.holds(query.body, z, low)  # the label wins: the property holds
    z[others[3]] = 1.0
    assert not q.holds(query.body, z, low)  # a tie violates it (VNN-LIB's >=)


def test_a_disjunction_over_input_boxes_gives_one_query_per_box(tmp_path):
    path = tmp_path / "boxes.vnnlib"
    path.write_text("""; two boxes
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(assert (<= X_1 1.0))
(assert (>= X_1 -1.0))
(assert (or
    (and (>= X_0 0.0) (<= X_0 0.5) (>= Y_0 Y_1))
    (and (>= X_0 0.5) (<= X_0 1.0) (<= Y_0 (- 2.0)))
    (and (>= X_0 0.5) (<= X_0 1.0) (>= (+ Y_0 (* -3 Y_1)) 1e-1))
))
""")
    first, second = read_vnnlib(path)
    assert np.array_equal(first.region.box_low, [0.0, -1.0])
    assert np.array_equal(first.region.box_high, [0.5, 1.0])
    assert np.array_equal(second.region.box_low, [0.5, -1.0])
    x = np.zeros(2)
    assert q.holds(first.body, np.array([0.0, 1.0]), x)
    assert not q.holds(first.body, np.array([1.0, 1.0]), x)
    assert not q.holds(second.body, np.array([-3.0, 5.0]), x)  # Y_0 <= -2
    assert not q.holds(second.body, np.array([1.0, 0.0]), x)  # Y_0 - 3 Y_1 >= 0.1
    assert q.holds(second.body, np.array([0.0, 0.0]), x)


HEADER = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(declare-const Y_1 Real)\n"


@pytest.mark.parametrize("body, where, message", [
    ("(assert (<= X_0 1.0)\n", "4:1", "never closed"),
    ("(assert (<= X_0 1.0)))\n", "4:22", "unmatched ')'"),
    ("(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (=> Y_0 Y_1))\n", "6:10",
     "expected and, or, <=, >=, <, > or =, found '=>'"),
    ("(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (<= Y_2 Y_1))\n", "6:13",
     "'Y_2' is not declared"),
    ("(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (<= (* Y_0 Y_1) 0))\n", "6:20",
     "expected a constant factor"),
    ("(assert (<= X_0 1.0))\n(assert (<= Y_0 Y_1))\n", "1:16", "X_0 has no lower bound"),
    ("(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (<= Y_0 abc))\n", "6:17",
     "expected a number, X_i or Y_j, found 'abc'"),
    ("(declare-fun f () Real)\n", "4:2", "expected declare-const or assert"),
])
def test_malformed_files_give_located_errors(tmp_path, body, where, message):
    path = tmp_path / "bad.vnnlib"
    path.write_text(HEADER + body)
    with pytest.raises(VnnlibError) as info:
        read_vnnlib(path)
    assert str(info.value).startswith(f"{path}:{where}: "), str(info.value)
    assert message in str(info.value)


def test_gzip_and_unreadable_files(tmp_path):
    text = HEADER + "(assert (<= X_0 1.0))\n(assert (>= X_0 0.0))\n(assert (>= Y_0 Y_1))\n"
    path = tmp_path / "p.vnnlib.gz"
    path.write_bytes(gzip.compress(text.encode()))
    (query,) = read_vnnlib(path)
    assert np.array_equal(query.region.box_high, [1.0])
    broken = tmp_path / "broken.vnnlib.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(VnnlibError, match="cannot read"):
        read_vnnlib(broken)
    with pytest.raises(VnnlibError, match="cannot read"):
        read_vnnlib(tmp_path / "missing.vnnlib")
