"""Fuzzing the CountDown evaluator: it never raises anything but ExpressionRejected on arbitrary text, the reward
never raises on arbitrary responses, and on generated valid expressions it agrees with exact Fraction arithmetic."""

from fractions import Fraction

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deltal.rewards.countdown import ExpressionRejected, compute_score, compute_score_strict, evaluate_expression

GT = {"target": 24, "numbers": [3, 8, 1, 1]}
ARITHMETIC_TEXT = st.text(alphabet="0123456789+-*/() \n\t.<>answer/x*", max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), ARITHMETIC_TEXT))
def test_evaluator_only_ever_raises_expression_rejected(text):
    try:
        value, literals = evaluate_expression(text)
    except ExpressionRejected as rejected:
        assert rejected.reason
    else:
        assert isinstance(value, Fraction)
        assert all(isinstance(n, int) and n >= 0 for n in literals)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=400), ARITHMETIC_TEXT), st.sampled_from(["", "<answer>", "</answer>"]))
def test_reward_never_raises_on_arbitrary_responses(text, wrapper):
    response = f"<answer>{text}</answer>" if wrapper == "" else wrapper + text + wrapper
    for scorer in (compute_score, compute_score_strict):
        result = scorer("countdown", response, GT)
        assert result["score"] in (0.0, 1.0)
        assert result["acc"] == result["score"]


def _combine(op, left, right):
    # An expression (text, exact value or None after a division by zero, literals) built from two operands.
    (left_text, left_value, left_literals), (right_text, right_value, right_literals) = left, right
    if left_value is None or right_value is None or (op == "/" and right_value == 0):
        value = None
    else:
        value = {"+": left_value + right_value, "-": left_value - right_value, "*": left_value * right_value}.get(op)
        value = left_value / right_value if op == "/" else value
    return f"({left_text} {op} {right_text})", value, left_literals + right_literals


LEAVES = st.integers(min_value=0, max_value=999).map(lambda n: (str(n), Fraction(n), [n]))
EXPRESSIONS = st.recursive(
    LEAVES,
    lambda children: st.builds(_combine, st.sampled_from("+-*/"), children, children),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(EXPRESSIONS)
def test_evaluator_agrees_with_exact_fraction_arithmetic(expression):
    text, expected_value, expected_literals = expression
    if expected_value is None:
        try:
            evaluate_expression(text)
        except ExpressionRejected as rejected:
            assert rejected.reason == "div_by_zero"
        else:
            raise AssertionError(f"{text} divides by zero but was accepted")
        return
    value, literals = evaluate_expression(text)
    assert value == expected_value
    assert literals == expected_literals


@settings(max_examples=200, deadline=None)
@given(EXPRESSIONS)
def test_reward_accepts_every_valid_expression_for_its_own_value_and_numbers(expression):
    text, value, literals = expression
    assume(value is not None and value.denominator == 1)
    ground_truth = {"target": int(value), "numbers": list(reversed(literals))}
    assert compute_score("countdown", f"<think>...</think><answer>{text}</answer>", ground_truth)["score"] == 1.0
