"""Every malformed input is one located SpecError: file, line, column, what was expected."""
from __future__ import annotations

import pytest

import specrob
from specrob.lang.errors import SpecError
from specrob.lang.loader import load, overrides_from_cli

CR = "property R(eps = 0.1):\n    forall x in ball(x0, eps, inf): argmax(f(x)) == y\n"

# (case, spec text, line, column, fragment of the message or its expected/hint lines)
CASES = [
    ("syntax error", "property R(eps = 0.1):\n    forall x in ball(x0, eps, inf): f(x)[y] >> 0\n",
     2, 46, "unexpected '>'"),
    ("misspelt keyword", "propery R(eps = 0.1):\n    forall x in ball(x0, eps): true\n",
     1, 1, "did you mean 'property'"),
    ("truncated file", "property R(eps = 0.1):\n    forall x in ball(x0, eps, inf): f(x)[y] >=",
     2, 47, "unexpected end of file"),
    ("truncated declaration", "property R(eps = 0.1", 1, 21, "unexpected end of file"),
    ("empty file", "", 1, 1, "declares nothing"),
    ("only comments", "# nothing here\n", 1, 1, "declares nothing"),
    ("unknown name", "property R(eps = 0.1, delta = 1):\n"
                     "    forall x in ball(x0, eps): norm(f(x) - f(x0), inf) <= delt\n",
     2, 59, "did you mean 'delta'"),
    ("unknown function", "property R(eps = 0.1):\n    forall x in ball(x0, eps): nrm(f(x), 1) <= 1\n",
     2, 32, "did you mean 'norm'"),
    ("misspelt ball", "property R(eps = 0.1):\n    forall x in bal(x0, eps): true\n",
     2, 17, "did you mean 'ball'"),
    ("variable outside its quantifier", "property R(eps = 0.1):\n"
     "    forall x in ball(x0, eps): (forall j != y: f(x)[y] > f(x)[j]) and f(x)[j] > 0\n",
     2, 76, "outside its quantifier"),
    ("input variable outside its quantifier", "property R(eps = 0.1):\n"
     "    forall x in ball(x0, norm(x, 2)): true\n", 2, 31, "outside its quantifier"),
    ("unknown norm in a ball", "property R(eps = 0.1):\n    forall x in ball(x0, eps, 3): true\n",
     2, 31, "unknown norm 3"),
    ("unknown norm in norm()", "property R(eps = 0.1):\n"
     "    forall x in ball(x0, eps): norm(f(x), 0) <= 1\n", 2, 43, "unknown norm 0"),
    ("unknown norm as a default", "property R(eps = 0.1, p: norm = 3):\n"
     "    forall x in ball(x0, eps, p): true\n", 1, 33, "unknown norm 3"),
    ("negative eps", "property R(eps: nonneg = -0.1):\n    forall x in ball(x0, eps): true\n",
     1, 26, "must not be negative"),
    ("negative literal radius", "property R:\n    forall x in ball(x0, -0.5): true\n",
     2, 26, "must not be negative"),
    ("negative delta via instance", "property s = SR(delta = -1)\n", 1, 25, "must not be negative"),
    ("negative L via instance", "property s = LR(L = -2)\n", 1, 21, "must not be negative"),
    ("negative alpha via instance", "property s = LocalLipschitz(alpha = -1)\n", 1, 37,
     "must not be negative"),
    ("negative r via instance", "property s = LocalLipschitz(r = -0.3)\n", 1, 33,
     "must not be negative"),
    ("eta above 1", "property s = SCR(eta = 1.5)\n", 1, 24, "strictly between 0 and 1"),
    ("eta at 0", "property s = SCR(eta = 0)\n", 1, 24, "strictly between 0 and 1"),
    ("unknown template", "property s = CRR(eps = 0.1)\n", 1, 14, "did you mean 'CR'"),
    ("unknown template parameter", "property s = CR(epss = 0.1)\n", 1, 17, "did you mean 'eps'"),
    ("unknown type", "property R(eps: nonnegative = 0.1):\n    forall x in ball(x0, eps): true\n",
     1, 17, "did you mean 'nonneg'"),
    ("unknown unit", "property R(eps: nonneg[inptu] = 0.1):\n    forall x in ball(x0, eps): true\n",
     1, 17, "did you mean 'input'"),
    ("unit mismatch", "property R(eps = 0.1, d: real[input] = 1):\n"
     "    forall x in ball(x0, eps): norm(f(x) - f(x0), inf) <= d\n", 2, 32, "unit mismatch"),
    ("vector compared", "property R(eps = 0.1):\n    forall x in ball(x0, eps): f(x) <= 1\n",
     2, 32, "compare numbers, not vectors"),
    ("argmax ordered", "property R(eps = 0.1):\n    forall x in ball(x0, eps): argmax(f(x)) < y\n",
     2, 45, "does not compare indices"),
    ("term as formula", "property R(eps = 0.1):\n    forall x in ball(x0, eps): f(x)[y] + 1\n",
     2, 32, "expected a formula"),
    ("no input quantifier", "property R(eps = 0.1):\n    f(x0)[y] > 0\n", 2, 5,
     "starts with its input quantifier"),
    ("two input quantifiers", "property R(eps = 0.1):\n"
     "    forall x in ball(x0, eps): forall z in ball(x0, eps): true\n", 2, 32,
     "one input quantifier"),
    ("ball not at x0", "property R(eps = 0.1):\n    forall x in ball(y, eps): true\n", 2, 22,
     "centred at the data point x0"),
    ("f of something else", "property R(eps = 0.1):\n    forall x in ball(x0, eps): f(y)[0] > 0\n",
     2, 34, "f(x) or f(x0)"),
    ("unknown centres", "property R(eps = 0.1):\n    centres: tset\n    forall x in ball(x0, eps): true\n",
     2, 5, "did you mean 'test'"),
    ("unknown filter", "property R(eps = 0.1):\n    centres: test where corect\n"
     "    forall x in ball(x0, eps): true\n", 2, 25, "expected: correct"),
    ("duplicate declaration", CR + CR, 3, 1, "declared twice"),
    ("duplicate parameter", "property R(eps = 0.1, eps = 0.2):\n    forall x in ball(x0, eps): true\n",
     1, 23, "declared twice"),
    ("unknown H", "score s(eps = 0.1):\n    Q = uniform(ball(x0, eps, 2))\n    H = indicatr\n",
     3, 9, "did you mean 'indicator'"),
    ("unknown score setting", "score s(eps = 0.1):\n    Q = uniform(ball(x0, eps, 2))\n"
     "    H = id\n    K = 1\n", 4, 5, "unknown score setting"),
    ("score without Q", "score s(eps = 0.1):\n    H = id\n", 1, 1, "has no Q"),
    ("unknown kernel", "score s(sigma = 0.1):\n    Q = gausian(x0, sigma)\n    H = id\n", 2, 9,
     "did you mean 'gaussian'"),
    ("single quotes", "import 'sr.rspec'\n", 1, 8, "double quotes"),
    ("assignment for comparison", "property R(eps = 0.1):\n"
     "    forall x in ball(x0, eps): f(x)[y] = 0\n", 2, 40, "unexpected '='"),
]


@pytest.mark.parametrize("case,text,line,col,fragment", CASES, ids=[c[0] for c in CASES])
def test_malformed_spec_is_reported_at_its_place(write, case, text, line, col, fragment):
    path = write(text)
    with pytest.raises(SpecError) as info:
        load(path)
    err = info.value
    assert (err.line, err.col) == (line, col), err.format()
    assert fragment in err.format()
    assert err.format().startswith(f"{path}:{line}:{col}: error: ")


def test_error_message_shows_the_line_with_a_caret(write):
    path = write("property R(eps = 0.1, delta = 1):\n"
                 "    forall x in ball(x0, eps): norm(f(x) - f(x0), inf) <= delt\n")
    with pytest.raises(SpecError) as info:
        load(path)
    lines = info.value.format().splitlines()
    assert lines[1].strip().endswith("<= delt")
    caret = lines[2]
    assert caret.strip() == "^^^^"
    assert caret.index("^") == lines[1].index("delt")


def test_non_utf8_bytes_are_located(write):
    path = write(b"property R(eps = 0.1):\n    forall x in ball(x0, eps): \xff > 0\n")
    with pytest.raises(SpecError) as info:
        load(path)
    assert (info.value.line, info.value.col) == (2, 32)
    assert "UTF-8" in info.value.format()


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load(tmp_path / "absent.rspec")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(SpecError, match="is a directory") as info:
        load(tmp_path)
    assert "*.rspec" in info.value.format()


def test_missing_import(write):
    path = write('import "nowhere.rspec"\n' + CR)
    with pytest.raises(SpecError, match="cannot import 'nowhere.rspec'") as info:
        load(path)
    assert (info.value.line, info.value.col) == (1, 1)


def test_cyclic_import(write):
    write('import "b.rspec"\n' + CR, "a.rspec")
    b = write('import "a.rspec"\n' + CR.replace("R(", "S("), "b.rspec")
    with pytest.raises(SpecError, match=r"cyclic import: b.rspec -> a.rspec -> b.rspec") as info:
        load(b)
    assert info.value.line == 1


def test_self_import_is_cyclic(write):
    path = write('import "self.rspec"\n' + CR, "self.rspec")
    with pytest.raises(SpecError, match="cyclic import"):
        load(path)


@pytest.mark.parametrize("setting,fragment", [
    ("epss=0.1", "did you mean 'eps'"),
    ("eps=abc", "needs a number"),
    ("eps=-1", "must not be negative"),
    ("p=3", "unknown norm 3"),
    ("eps", "name=value"),
])
def test_bad_set_values_are_reported(write, setting, fragment):
    path = write(CR.replace("R(eps = 0.1)", "R(eps: nonneg = 0.1, p: norm = inf)"))
    with pytest.raises(SpecError) as info:
        load(path, overrides_from_cli([setting]))
    text = info.value.format()
    assert fragment in text
    assert text.startswith("--set:1:")
    assert setting in text


def test_eta_override_out_of_range_through_the_api(tmp_path):
    with pytest.raises(SpecError, match="strictly between 0 and 1"):
        specrob.load(_stdlib("scr.rspec"), eta=1.0)


def _stdlib(name: str):
    from specrob.resources import specs_dir
    return specs_dir() / name


def test_mistakes_in_an_imported_file_are_reported_in_that_file(write):
    lib = write("property Broken(eps = 0.1):\n    forall x in ball(x0, eps): f(x)[y] > undefined\n",
                "lib.rspec")
    path = write('import "lib.rspec"\nproperty ok = CR()\n', "main.rspec")
    with pytest.raises(SpecError, match="unknown name 'undefined'") as info:
        load(path)
    assert info.value.path == str(lib.resolve()) and info.value.line == 2
