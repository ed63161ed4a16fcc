"""The countdown_trace_full reward checks every line: 1 only for the whole search in its fixed order up to the first
hit, then that line's answer; a wrong, skipped, extra or missing line scores 0 with its own reason, ``lines_ok``
counts the leading lines that match the search, and a correct response is exactly the builder's trace, so its
length is set by the problem. countdown_trace_partial scores the same responses with partial credit for the part
of the search written correctly, below any correct answer, with ``acc`` still exact correctness."""

import random

import pytest

from deltal.data.countdown_trace import DATA_SOURCES, draw, response_text, trace
from deltal.rewards import compute_score
from deltal.rewards.countdown_trace import PARTIAL_CREDIT, compute_score_full, compute_score_partial

TRUTH = {"target": 56, "numbers": [3, 5, 7]}
SEARCH = ["3+5=8,8+7=15", "3+5=8,8-7=1", "3+5=8,8*7=56"]
ANSWER = "<answer>(3+5)*7</answer>"
GOOD = "\n".join(SEARCH) + "\n" + ANSWER


def full(text: str, truth=TRUTH) -> dict:
    return compute_score_full("countdown_trace_full", text, truth)


def test_the_builders_response_is_the_one_correct_answer_through_the_dispatcher():
    assert DATA_SOURCES["full_trace"] == "countdown_trace_full"
    assert response_text((3, 5, 7), 56) == GOOD
    result = compute_score("countdown_trace_full", GOOD, TRUTH)
    assert result["score"] == 1.0 and result["reason"] == "correct" and result["lines_ok"] == 3.0
    assert result["data_source"] == "countdown_trace_full"


@pytest.mark.parametrize(
    "lines, answer, reason, lines_ok",
    [
        # The last-line reward accepts this (a lucky shortcut); the full trace does not: the search was skipped.
        (["3+5=8,8*7=56"], ANSWER, "wrong_line", 0),
        (["3+5=8,8+7=15", "3+5=8,8*7=56"], ANSWER, "wrong_line", 1),  # a line of the search left out
        (["3+5=8,8+7=15", "3+5=8,8-7=2", "3+5=8,8*7=56"], ANSWER, "wrong_line", 1),  # an arithmetic slip
        (["3+5=8,8+7=15", "3+5=8,8-7=1"], "<answer>3+5-7</answer>", "stopped_before_hit", 2),
        ([*SEARCH, "3+5=8,8/7=1"], "<answer>(3+5)/7</answer>", "past_first_hit", 3),
        (SEARCH, "<answer>7*(3+5)</answer>", "answer_not_last_line", 3),  # right value, not the line's rendering
    ],
)
def test_every_departure_from_the_search_scores_zero_with_its_reason(lines, answer, reason, lines_ok):
    result = full("\n".join(lines) + "\n" + answer)
    assert (result["score"], result["reason"], result["lines_ok"]) == (0.0, reason, float(lines_ok))
    assert result["format_ok"] == 1.0


@pytest.mark.parametrize("text", [GOOD + " done", GOOD[:-9], ANSWER, "3+5=8,8+7=15\n3+5=", ""])
def test_malformed_responses_score_zero_as_not_exact_format(text):
    result = full(text)
    assert (result["score"], result["reason"], result["lines_ok"], result["format_ok"]) == (
        0.0,
        "not_exact_format",
        0.0,
        0.0,
    )


def test_every_result_has_the_same_keys_so_verls_per_key_lists_stay_aligned():
    texts = [GOOD, GOOD + " x", "3+5=8,8*7=56\n" + ANSWER, "\n".join(SEARCH) + "\n<answer>7*(3+5)</answer>"]
    assert len({tuple(sorted(full(text))) for text in texts}) == 1


def test_correct_responses_have_the_length_of_their_problems_depth():
    rng = random.Random(3)
    for _ in range(50):
        numbers, target = draw(rng)
        text = response_text(numbers, target)
        truth = {"target": target, "numbers": list(numbers)}
        result = full(text, truth)
        assert result["score"] == 1.0 and result["lines_ok"] == len(trace(numbers, target))
        assert text.count("\n") == len(trace(numbers, target))


def test_the_prompt_order_of_the_numbers_fixes_the_search():
    # Same multiset, other order: the search starts with another pair, so the trace above is no longer it.
    result = full(GOOD, {"target": 56, "numbers": [5, 3, 7]})
    assert result["score"] == 0.0 and result["reason"] == "wrong_line"


def test_ground_truth_the_search_cannot_reach_is_an_error_naming_the_builder():
    with pytest.raises(ValueError, match="--reward full_trace"):
        full(GOOD, {"target": 999, "numbers": [1, 1, 1]})
    with pytest.raises((ValueError, TypeError), match="ground_truth"):
        full(GOOD, {"numbers": [3, 5, 7]})


@pytest.mark.parametrize(
    "text, credit",
    [
        (GOOD, 1.0),
        ("3+5=8,8+7=15\n3+5=8,8-7=1\n<answer>3+5-7</answer>", PARTIAL_CREDIT * 2 / 3),  # stopped before the hit
        # Past the hit by one line: as much as stopping one line short.
        ("\n".join([*SEARCH, "3+5=8,8/7=1"]) + "\n<answer>(3+5)/7</answer>", PARTIAL_CREDIT * 2 / 3),
        # Past the hit by three lines: nothing left.
        ("\n".join([*SEARCH, "3+5=8,8/7=1", "3+7=10,10+5=15", "3+7=10,10-5=5"]) + "\n<answer>10-5</answer>", 0.0),
        # A wrong second line and one line too many: one correct line, less one past the hit.
        ("\n".join(["3+5=8,8+7=15", "3+5=8,8-7=2", "3+5=8,8*7=56", "3+7=10,10+5=15"]) + "\n<answer>10+5</answer>", 0.0),
        ("3+5=8,8*7=56\n" + ANSWER, 0.0),  # the search skipped from its first line
        (GOOD + " trailing", 0.0),
    ],
)
def test_partial_credit_grows_with_the_search_written_and_stays_below_a_correct_answer(text, credit):
    result = compute_score("countdown_trace_partial", text, TRUTH)
    assert result["score"] == pytest.approx(credit)
    assert result["acc"] == (1.0 if credit == 1.0 else 0.0)
    assert result["reason"] == full(text)["reason"] and result["lines_ok"] == full(text)["lines_ok"]
    assert compute_score_partial("countdown_trace_partial", text, TRUTH) == {
        key: value for key, value in result.items() if key != "data_source"
    }
