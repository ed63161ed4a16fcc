"""The countdown_trace reward is strict: 1 only for trace lines followed by exactly the last line's answer, and 0 for
truncated responses, trailing text, a missing trace, an answer that does not follow the last line, or a wrong answer."""

import pytest

from deltal.data.countdown_trace import response_text
from deltal.rewards import compute_score
from deltal.rewards.countdown_trace import compute_score as trace_score

TRUTH = {"target": 56, "numbers": [3, 5, 7]}
GOOD = "3+5=8,8+7=15\n3+5=8,8-7=1\n3+5=8,8*7=56\n<answer>(3+5)*7</answer>"


def score(text: str, truth=TRUTH) -> dict:
    return compute_score("countdown_trace", text, truth)


def test_the_builders_response_scores_one_through_the_dispatcher():
    assert response_text((3, 5, 7), 56) == GOOD
    result = score(GOOD)
    assert result["score"] == 1.0 and result["reason"] == "correct" and result["data_source"] == "countdown_trace"
    assert score("  " + GOOD + "\n")["score"] == 1.0  # outer whitespace is not text


@pytest.mark.parametrize(
    "text, reason",
    [
        (GOOD + " done", "not_exact_format"),  # trailing text
        (GOOD + "\n<answer>(3+5)*7</answer>", "not_exact_format"),  # a second answer after the first
        (GOOD[:-9], "not_exact_format"),  # truncated inside the closing tag
        ("3+5=8,8+7=15\n3+5=8,8-7=1\n3+5=", "not_exact_format"),  # truncated mid-trace
        ("<answer>(3+5)*7</answer>", "not_exact_format"),  # no trace
        ("3+5=8,8*7=56 <answer>(3+5)*7</answer>", "not_exact_format"),  # trace line not ended by a newline
        ("3+5=8,8*7=56\nso\n<answer>(3+5)*7</answer>", "not_exact_format"),  # free text inside the trace
        ("3+5=8,8+7=15\n<answer>(3+5)*7</answer>", "answer_not_last_line"),  # answer does not follow the trace
        ("3+5=8,8+7=15\n<answer>3+5+7</answer>", "wrong_value"),  # follows the trace, but misses the target
        ("3+5=8,7*8=56\n<answer>7*(3+5)</answer>", "correct"),  # the first value may be the right operand
    ],
)
def test_fixed_examples(text, reason):
    result = trace_score("countdown_trace", text, TRUTH)
    assert result["reason"] == reason
    assert result["score"] == (1.0 if reason == "correct" else 0.0)


def test_wrong_numbers_score_zero():
    assert score("3+5=8,8*7=56\n<answer>(3+5)*7</answer>", {"target": 56, "numbers": [3, 5, 8]})["score"] == 0.0


def test_bad_ground_truth_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="ground_truth"):
        score(GOOD, {"target": 56})
