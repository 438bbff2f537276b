"""Nothing but SpecError escapes the front end: sentences drawn from the grammar, mutated
standard specs and random bytes."""
from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.lark import from_lark

import specrob
from specrob.lang.errors import SpecError
from specrob.lang.loader import load
from specrob.lang.parser import _lark
from tests.conftest import SPECS

# Names drawn from the language's own vocabulary reach the checker's deeper paths.
VOCABULARY = ["x", "x0", "y", "f", "j", "k", "eps", "delta", "p", "inf", "ball", "norm",
              "argmax", "softmax", "max", "min", "abs", "onehot", "box", "uniform", "gaussian",
              "manifold", "Q", "H", "G", "id", "indicator", "density", "label", "train", "test",
              "correct", "points", "nonneg", "real", "prob", "norm", "input", "output", "CR",
              "SR", "LR", "SCR", "margin_area", "diameter", "dim", "sigma"]
SENTENCES = from_lark(_lark(), explicit={
    "NAME": st.sampled_from(VOCABULARY),
    "NUMBER": st.sampled_from(["0", "1", "2", "0.1", "3", "1e-3", ".5", "10.0"]),
    "STRING": st.sampled_from(['"sr.rspec"', '"gen.py"', '"pts.npz"', '""', '"nowhere"']),
    "CMP": st.sampled_from(["<=", "<", ">=", ">", "=="]),
    "WS": st.sampled_from([" ", "\n", "\t", "  \n  "]),
    "COMMENT": st.sampled_from(["# a comment\n", "#"]),
})
FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _only_spec_errors(text: str) -> None:
    try:
        specrob.loads(text)
    except SpecError as error:
        assert error.line >= 1 and error.col >= 1
        error.format()


@settings(FAST, max_examples=100)  # from_lark draws ~4 sentences a second here
@given(SENTENCES)
def test_grammar_sentences_check_or_fail_cleanly(text):
    _only_spec_errors(text)


@FAST
@given(st.sampled_from(SPECS), st.data())
def test_mutated_standard_specs_fail_cleanly(path, data):
    text = path.read_text()
    cut = data.draw(st.integers(0, len(text)))
    length = data.draw(st.integers(0, 12))
    insert = data.draw(st.sampled_from(["", "(", ")", ":", " and ", "x", "0", "-", "[", "not ",
                                        "forall j:", "==", "#", "\n", "'", "\u00e9", "\x00"]))
    _only_spec_errors(text[:cut] + insert + text[cut + length:])


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_fail_cleanly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "random.rspec"
    path.write_bytes(data)
    try:
        load(path)
    except SpecError:
        pass
