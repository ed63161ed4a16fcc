"""The equivalence check treats an escaped ``\\$`` as a price, not math mode, so dollar, unit, percent and thousands
answers score as math-verify reads them; and it never compares a cut-off answer: a string longer than the parsed
limit is reduced to its final ``\\boxed{}`` answer, or gets its own too-long status, never "equal".

Runs the check in the test process (math-verify's alarms need the main thread, which pytest's is)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "server" / "math"))

from equivalence import answer_region, check_pair, wrap_for_math_verify  # noqa: E402

LIMIT = 4000
ONES_60X60 = "\\begin{pmatrix}" + "\\\\".join(["&".join(["1"] * 60)] * 60) + "\\end{pmatrix}"


def check(gold: str, prediction: str) -> str:
    return check_pair(gold, prediction, 2, LIMIT)


@pytest.mark.parametrize(
    ("text", "wrapped"),
    [
        ("\\$5", "$\\$5$"),
        ("\\text{\\$}5", "$\\text{\\$}5$"),
        ("the price is $5$", "the price is $5$"),
        ("a\\\\$x$", "a\\\\$x$"),  # a line break, then real math mode
        ("\\boxed{\\$5}", "\\boxed{\\$5}"),
    ],
)
def test_only_an_unescaped_dollar_counts_as_math_mode(text, wrapped):
    assert wrap_for_math_verify(text) == wrapped


@pytest.mark.parametrize(
    ("gold", "prediction"),
    [("\\$5", "5"), ("5", "\\$5"), ("\\$18.90", "18.90"), ("18.90", "\\$18.90"), ("\\$1,000", "1000")],
)
def test_dollar_answers_are_equal_in_both_directions(gold, prediction):
    assert check(gold, prediction) == "equal"


def test_a_wrong_dollar_answer_is_not_equal():
    assert check("\\$5", "6") == "not_equal"
    assert check("\\$5", "\\$6") == "not_equal"


def test_a_long_matrix_is_never_equal_to_its_last_entries():
    assert len(ONES_60X60) > LIMIT
    assert check("1", ONES_60X60) == "too_long"
    assert check(ONES_60X60, "1") == "gold_too_long"
    assert check("1", "so \\boxed{" + ONES_60X60 + "}") == "too_long"


def test_a_long_text_is_cut_to_its_whole_final_boxed_answer():
    prose = "we reason " * 1000
    assert answer_region(prose + "\\boxed{\\frac{1}{2}}.", LIMIT) == "\\boxed{\\frac{1}{2}}"
    assert answer_region(prose + "\\boxed{\\{1, 2\\}}", LIMIT) == "\\boxed{\\{1, 2\\}}"
    assert check("0.5", prose + "\\boxed{\\frac{1}{2}}.") == "equal"
    assert answer_region(prose + "\\boxed{7", LIMIT) is None  # cut off before it closes: no final answer
    assert answer_region(prose, LIMIT) is None
    assert answer_region("  short  ", LIMIT) == "short"
