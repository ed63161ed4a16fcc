"""The CountDown reward scores completions exactly (last <answer>, exact numbers, exact arithmetic), rejects
adversarial answers quickly without raising, and raises a clear error on malformed ground truth."""

import time

import numpy as np
import pytest

from deltal.rewards.countdown import (
    ExpressionRejected,
    compute_score,
    compute_score_strict,
    evaluate_expression,
)

GT = {"target": 24, "numbers": [3, 8, 1, 1]}

# (completion, expected score, expected reason) for the lenient reward with the default format_score 0.0
LENIENT_CASES = [
    # correct, with think text before
    ("<think>3*8=24, times 1 twice</think> <answer>3*8*1*1</answer>", 1.0, "correct"),
    # correct with parentheses and spaces
    ("<answer> (3 * 8) * (1 * 1) </answer>", 1.0, "correct"),
    # whitespace and newlines inside the tag
    ("<answer>\n  3 * 8\n * 1 / 1\n</answer>", 1.0, "correct"),
    # exact rational arithmetic: 8 / (1/3) = 24 needs no float rounding
    ("<answer>8/(1/3)*1</answer>", 1.0, "correct"),
    # wrong value
    ("<answer>3+8+1+1</answer>", 0.0, "wrong_value"),
    # a number not given
    ("<answer>4*6*1*1</answer>", 0.0, "wrong_numbers"),
    # a number reused (8 twice) and one missing
    ("<answer>3*8*1*8/8</answer>", 0.0, "wrong_numbers"),
    # a number left out
    ("<answer>3*8*1</answer>", 0.0, "wrong_numbers"),
    # missing tags
    ("3*8*1*1", 0.0, "no_answer"),
    # only an opening tag (truncated)
    ("<answer>3*8*1*1", 0.0, "no_answer"),
    # several answers: the last one counts (wrong first, right last)
    ("<answer>3+8+1+1</answer> wait <answer>3*8*1*1</answer>", 1.0, "correct"),
    # several answers: the last one counts (right first, wrong last)
    ("<answer>3*8*1*1</answer> no: <answer>3+8+1+1</answer>", 0.0, "wrong_value"),
    # the usual TinyZero form with '= target' is not an expression
    ("<answer>3*8*1*1 = 24</answer>", 0.0, "bad_chars"),
    # division by zero
    ("<answer>3*8/(1-1)</answer>", 0.0, "div_by_zero"),
    # power is not allowed, even when it would be right
    ("<answer>(3*8)**1*1</answer>", 0.0, "disallowed"),
    # unary minus is not allowed
    ("<answer>-3*-8*1*1</answer>", 0.0, "disallowed"),
    # floats are not allowed
    ("<answer>3.0*8*1*1</answer>", 0.0, "bad_chars"),
    # empty answer
    ("<answer>  </answer>", 0.0, "empty"),
    # garbage
    ("<answer>3)(*8+1 1</answer>", 0.0, "syntax"),
    # implicit multiplication is a call, not arithmetic
    ("<answer>3(8)*1*1</answer>", 0.0, "disallowed"),
    # unicode digits (Arabic-Indic three) are not ASCII digits
    ("<answer>\u0663*8*1*1</answer>", 0.0, "bad_chars"),
    # NUL byte inside the expression
    ("<answer>3*8\x00*1*1</answer>", 0.0, "bad_chars"),
]


@pytest.mark.parametrize(("completion", "score", "reason"), LENIENT_CASES)
def test_lenient_reward_scores_each_completion_as_expected(completion, score, reason):
    result = compute_score("countdown", completion, GT)
    assert (result["score"], result["reason"]) == (score, reason)
    assert result["acc"] == (1.0 if reason == "correct" else 0.0)


def test_exact_arithmetic_accepts_fractional_intermediates():
    result = compute_score("countdown", "<answer>8/(1/3)</answer>", {"target": 24, "numbers": [8, 1, 3]})
    assert result["score"] == 1.0
    third = compute_score("countdown", "<answer>1/3+1/3+1/3</answer>", {"target": 1, "numbers": [1, 3, 1, 3, 1, 3]})
    assert third["score"] == 1.0


def test_format_score_is_paid_for_well_formed_but_wrong_answers_only():
    wrong = compute_score("countdown", "<answer>3+8+1+1</answer>", GT, format_score=0.1)
    missing = compute_score("countdown", "no tags at all", GT, format_score=0.1)
    right = compute_score("countdown", "<answer>3*8*1*1</answer>", GT, format_score=0.1)
    assert (wrong["score"], wrong["format_ok"]) == (0.1, 1.0)
    assert (missing["score"], missing["format_ok"]) == (0.0, 0.0)
    assert right["score"] == 1.0


# (completion, expected score, expected reason) for the strict reward
STRICT_CASES = [
    # exactly one answer and nothing else
    ("<answer>3*8*1*1</answer>", 1.0, "correct"),
    # surrounding whitespace and newlines are fine
    ("\n  <answer>3*8*1*1</answer>\n", 1.0, "correct"),
    # trailing junk after the answer (the EOS-dropping failure mode) gets nothing
    ("<answer>3*8*1*1</answer> and more", 0.0, "not_exact_format"),
    # text before the answer gets nothing
    ("so <answer>3*8*1*1</answer>", 0.0, "not_exact_format"),
    # truncated response gets nothing
    ("<answer>3*8*1*1", 0.0, "not_exact_format"),
    # two answers get nothing, even if the last one is right
    ("<answer>1</answer><answer>3*8*1*1</answer>", 0.0, "not_exact_format"),
    # well-formed but wrong value
    ("<answer>3+8+1+1</answer>", 0.0, "wrong_value"),
]


@pytest.mark.parametrize(("completion", "score", "reason"), STRICT_CASES)
def test_strict_reward_requires_exactly_one_answer_and_nothing_else(completion, score, reason):
    result = compute_score_strict("countdown_easy", completion, GT)
    assert (result["score"], result["reason"]) == (score, reason)


def test_ground_truth_from_parquet_numpy_types_is_accepted():
    # verl hands ground truth over as loaded from parquet; numpy scalars and arrays must work.
    gt = {"target": np.int64(24), "numbers": np.array([3, 8, 1, 1], dtype=np.int64)}
    assert compute_score("countdown", "<answer>3*8*1*1</answer>", gt)["score"] == 1.0


@pytest.mark.parametrize(
    "bad_ground_truth",
    [{"numbers": [1, 2]}, {"target": 3}, "24", None, {"target": "24", "numbers": [1]}, {"target": 3, "numbers": []}],
)
def test_malformed_ground_truth_raises_a_clear_error(bad_ground_truth):
    with pytest.raises((ValueError, TypeError), match="python -m deltal.data.countdown"):
        compute_score("countdown", "<answer>1+2</answer>", bad_ground_truth)


def test_non_string_response_raises_a_clear_error():
    with pytest.raises(TypeError, match="decoded response text"):
        compute_score("countdown", b"<answer>1</answer>", GT)


ADVERSARIAL = {
    "power tower": "<answer>9**9**9**9</answer>",
    "huge power with ordinary numbers": "<answer>50**25**7**3</answer>",
    "10k nested parentheses": "<answer>" + "(" * 10_000 + "1" + ")" * 10_000 + "</answer>",
    "1 MB answer": "<answer>" + "1+" * 500_000 + "1</answer>",
    "1 MB of think text": "<think>" + "x" * 1_000_000 + "</think><answer>3*8*1*1</answer>",
    "1 MB of opening tags": "<answer>" * 125_000,
    "1 MB of closing tags": "</answer>" * 111_000,
    "NUL bytes": "<answer>" + "\x00" * 100_000 + "</answer>",
    "unicode digits": "<answer>" + "\u0663" * 200 + "</answer>",
    "million minus signs": "<answer>" + "-" * 1_000_000 + "1</answer>",
    "5000-digit literal": "<answer>" + "9" * 5000 + "</answer>",
    "60 nested parentheses around a right answer": "<answer>" + "(" * 60 + "3*8*1*1" + ")" * 60 + "</answer>",
}
RIGHT_ANSWERS = {"1 MB of think text", "60 nested parentheses around a right answer"}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_answers_score_quickly_without_raising(name):
    completion = ADVERSARIAL[name]
    for scorer in (compute_score, compute_score_strict):
        start = time.perf_counter()
        result = scorer("countdown", completion, GT)
        elapsed = time.perf_counter() - start
        # The target is 10 ms; 50 ms leaves room for a loaded 2-core CI box.
        assert elapsed < 0.05, f"{name}: {elapsed * 1e3:.1f} ms"
        if scorer is compute_score:
            assert result["score"] == (1.0 if name in RIGHT_ANSWERS else 0.0)


def test_evaluate_expression_reports_literals_in_order_and_exact_value():
    value, literals = evaluate_expression("(50 - 7*3) / 25")
    assert literals == [50, 7, 3, 25]
    assert value * 25 == 29


def test_evaluate_expression_rejects_with_a_reason_code():
    with pytest.raises(ExpressionRejected) as info:
        evaluate_expression("2**3")
    assert info.value.reason == "disallowed"
