"""The front end under hostile input: deep and long expressions, huge numbers, cyclic
templates, imports outside the spec's folder, special files, terminal escapes — each a clear
located error (exit 2), never a traceback, a hang or another file's contents
(shared cases reliability/spec_*)."""
from __future__ import annotations

import os

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

import specrob
from specrob.cli import app
from specrob.lang.errors import SpecError

HEAD = "property P(eps = 0.1):\n    forall x in ball(x0, eps, inf):\n        "


def check(path) -> str:
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output


def body(text: str) -> str:
    return HEAD + text + "\n"


@pytest.mark.parametrize("text", [
    "-" * 600 + "f(x)[0] <= 1",
    "abs(" * 400 + "f(x)[0]" + ")" * 400 + " <= 1",
    " + ".join(["f(x)[0]"] * 1500) + " <= 1",
    "not " * 3000 + "argmax(f(x)) == y",
    "(" * 2500 + "f(x)[0]" + ")" * 2500 + " <= 1",
])
def test_deep_or_long_expressions_end_in_a_located_error_or_check(write, text):
    result = CliRunner().invoke(app, ["check", str(write(body(text)))])
    assert result.exit_code in (0, 2) and "Traceback" not in result.output
    if result.exit_code == 2:
        assert ":1:1: error:" in result.output or "nests" in result.output


def test_a_sum_within_the_limit_checks(write):
    assert CliRunner().invoke(app, ["check", str(write(body(
        " + ".join(["f(x)[0]"] * 150) + " <= 1")))]).exit_code == 0


@pytest.mark.parametrize("text, says", [
    ("f(x)[1e400] <= 1", "the number 1e400 is too large"),
    ("f(x)[1e300] <= 1", "class index 1e300"),
    ("f(x)[0] <= 1e999", "the number 1e999 is too large"),
    ("f(x)[2.5] <= 1", "class index 2.5"),
])
def test_huge_or_fractional_indices(write, text, says):
    assert says in check(write(body(text)))


def test_a_huge_point_count(write):
    spec = write("property P(eps = 0.1):\n    centres: test, 1e400 points\n"
                 "    forall x in ball(x0, eps, inf):\n        argmax(f(x)) == y\n")
    assert ":2:20: error: the number 1e400 is too large" in check(spec)
    spec.write_text(spec.read_text().replace("1e400", "1e300"))
    assert ":2:20: error: a point count is a whole number >= 1, not 1e300" in check(spec)


@pytest.mark.parametrize("decls, cycle", [
    ("property A = B(eps = 0.01)\nproperty B = A(eps = 0.02)\n", "A -> B -> A"),
    ("property A = B()\nproperty B = C()\nproperty C = A()\n", "A -> B -> C -> A"),
])
def test_circular_templates_are_named(write, decls, cycle):
    assert f"circular templates: {cycle}" in check(write(decls))


def test_imports_outside_the_folder_are_refused_without_reading_them(tmp_path, monkeypatch):
    secret = tmp_path / "secret.txt"
    secret.write_text("API_KEY=sk-SECRET-1234\n")
    outside = tmp_path / "other" / "lib.rspec"
    outside.parent.mkdir()
    outside.write_text("property L = CR(eps = 0.01)\nAPI_KEY=sk-SECRET-5678\n")
    folder = tmp_path / "specs"
    folder.mkdir()
    for target, says in (("../secret.txt", "only .rspec files are imported"),
                         ("/proc/self/environ", "only .rspec files are imported"),
                         ("../other/lib.rspec", "outside the spec's folder")):
        spec = folder / "s.rspec"
        spec.write_text(f'import "{target}"\nproperty P = CR(eps = 0.01)\n')
        out = check(spec)
        assert says in out and "SECRET" not in out and "HOME=" not in out
    monkeypatch.setenv("SPECROB_IMPORT_PATH", str(outside.parent))
    out = check(folder / "s.rspec")  # now read: its own syntax error, in its own file
    assert str(outside) in out and "lies outside" not in out


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_special_files_are_refused_at_once(path):
    assert "not a regular file" in check(path)


def test_a_fifo_does_not_block(tmp_path):
    fifo = tmp_path / "spec.rspec"
    os.mkfifo(fifo)
    assert "not a regular file" in check(fifo)


def test_a_huge_file_is_refused(tmp_path):
    big = tmp_path / "big.rspec"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    assert "larger than 1 MiB" in check(big)


@pytest.mark.parametrize("decl, says", [
    ("property P(eps = 0.1, property = 1):", "'property' is a reserved word"),
    ("property P(eps = 0.1, forall = 1):", "'forall' is a reserved word"),
])
def test_reserved_words_cannot_name_parameters(write, decl, says):
    spec = write(decl + "\n    forall x in ball(x0, eps, inf):\n        argmax(f(x)) == y\n")
    assert says in check(spec)


@pytest.mark.parametrize("clause", ["centres: test\n    centres: train",
                                    "domain: box(0, 1)\n    domain: box(0.2, 0.8)"])
def test_a_clause_given_twice_is_an_error(write, clause):
    spec = write(f"property P(eps = 0.1):\n    {clause}\n    forall x in ball(x0, eps, inf):\n"
                 f"        argmax(f(x)) == y\n")
    assert "a second" in check(spec) and ":3:5:" in check(spec)


def test_terminal_escapes_and_emoji_codes_are_shown_as_text(write):
    out = check(write(body("argmax(f(x)) == y :x: \x1b[31mred")))
    assert "\x1b" not in out and "\\x1b[31mred" in out and ":x:" in out


NESTING = st.recursive(st.just("f(x)[0]"),
                       lambda t: st.one_of(t.map(lambda s: f"-{s}"), t.map(lambda s: f"abs({s})"),
                                           t.map(lambda s: f"({s})"),
                                           st.tuples(t, t).map(lambda p: f"{p[0]} + {p[1]}")),
                       max_leaves=400)


@given(NESTING, st.integers(0, 300), st.sampled_from(["<= 1", "", ">= (", ") <="]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_nesting_gives_a_spec_or_a_located_error(term, extra, tail):
    text = body("-" * extra + term + " " + tail)
    try:
        specrob.loads(text)
    except SpecError as error:
        assert error.line >= 1 and error.col >= 1
        assert error.format()


def test_a_template_from_an_imports_own_import_is_found(tmp_path):
    (tmp_path / "c.rspec").write_text("property base(eps = 0.1):\n    forall x in ball(x0, eps, "
                                      "inf):\n        argmax(f(x)) == y\n")
    (tmp_path / "b.rspec").write_text('import "c.rspec"\nproperty mid = base(eps = 0.05)\n')
    (tmp_path / "a.rspec").write_text('import "b.rspec"\nproperty top = mid(eps = 0.02)\n')
    spec = specrob.load(tmp_path / "a.rspec")
    assert spec["top"].value("eps") == 0.02


@pytest.mark.parametrize("divisor, sets", [("0", []), ("k", ["--set", "k=0"]),
                                           ("(eps - 0.1)", [])])
def test_division_by_a_constant_zero_is_located(write, divisor, sets):
    spec = write("property P(eps = 0.1, k = 1):\n    forall x in ball(x0, eps, inf):\n"
                 f"        f(x)[y] / {divisor} >= 1\n")
    result = CliRunner().invoke(app, ["check", str(spec), *sets])
    assert result.exit_code == 2 and ":3:" in result.output and "division by zero" in result.output
