"""CountDown reward: exact, bounded-time scoring of ``<answer>EXPR</answer>`` against (numbers, target).

verl calls :func:`compute_score` (lenient, data_source ``countdown``) or :func:`compute_score_strict`
(``countdown_easy``) through ``deltal.rewards.compute_score``. Differences from the usual TinyZero reward
(regex + ``eval``):

- The expression is parsed with :mod:`ast` and evaluated by a tiny interpreter over :class:`fractions.Fraction`:
  only non-negative int literals, ``+ - * /`` and parentheses. No ``eval``, no ``**`` (``9**9**9**9`` would hang
  ``eval``), no unary minus, no names, calls, floats or bools. Arithmetic is exact, so ``1/3+1/3+1/3`` is 1.
- Cost is bounded before parsing: the expression may hold at most 256 characters from ``0-9+-*/() `` and
  whitespace, at most 32 operator characters and 64 opening parentheses, so a 1 MB answer or 10k nested
  parentheses are rejected by C-level string scans. The response is searched with ``str.rfind`` (linear, no
  backtracking regex), so long reasoning text costs microseconds.
- The numbers used must equal the given multiset exactly (not a ``\\d+`` regex over the text).
- verl runs reward functions in a thread pool, where ``signal.alarm`` timeouts cannot work; these bounds make
  every call fast by construction instead.

Scores: 1.0 when correct; otherwise ``format_score`` (default 0.0, the paper's setting; pass it through
``reward.custom_reward_function.reward_kwargs.format_score``) when the answer tags were well formed, else 0.0.
Bad *responses* always get a score; bad *inputs from the pipeline* (a ground truth without ``target`` or
``numbers``, a non-string response) raise ``ValueError``/``TypeError`` naming the fix.

Library module; ``python benchmarks/bench_countdown_reward.py`` measures it.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Mapping
from fractions import Fraction
from numbers import Integral, Real
from typing import Any

logger = logging.getLogger(__name__)

OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"
MAX_EXPRESSION_CHARS = 256
MAX_OPERATORS = 32  # each BinOp needs one operator character, so this bounds the tree before parsing
MAX_OPEN_PARENS = 64  # bounds nesting depth before parsing
TOLERANCE = Fraction(1, 10**5)
ALLOWED_CHARS = frozenset("0123456789+-*/() \t\n\r")

_DIGIT_RUNS = re.compile(r"[0-9]+")
_WHITESPACE_BUT_SPACE = frozenset("\t\n\r")

Number = int | Fraction


def _divide(a: Number, b: Number) -> Number:
    # Stay in int arithmetic while the division is exact: ~10x cheaper than Fraction and exactly as precise.
    if type(a) is int and type(b) is int and a % b == 0:
        return a // b
    return Fraction(a) / b


_OPERATIONS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: _divide,
}


class ExpressionRejected(ValueError):
    """An answer expression that is not a valid CountDown equation; ``reason`` is a short code for logs."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]]:
    """Exact value of an arithmetic expression and the int literals it uses, in order.

    Raises ExpressionRejected (and nothing else) for anything that is not a bounded ``+ - * /`` expression over
    non-negative int literals, including division by zero.
    """
    value, literals = _evaluate(expression)
    return Fraction(value), literals


def _evaluate(expression: str) -> tuple[Number, list[int]]:
    # evaluate_expression without the final conversion: the value stays an int when every division was exact.
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ExpressionRejected("too_long", f"{len(expression)} > {MAX_EXPRESSION_CHARS} characters")
    if not ALLOWED_CHARS.issuperset(expression):
        raise ExpressionRejected("bad_chars", "only ASCII digits, + - * / ( ) and spaces are allowed")
    # Every BinOp needs an operator character, so these caps bound the tree's size and depth before parsing.
    operators = expression.count("+") + expression.count("-") + expression.count("*") + expression.count("/")
    if operators > MAX_OPERATORS or expression.count("(") > MAX_OPEN_PARENS:
        raise ExpressionRejected("too_complex", "too many operators or parentheses")
    if not _WHITESPACE_BUT_SPACE.isdisjoint(expression):
        # Newlines would end the statement for ast.parse; an answer over several lines is still one expression.
        expression = " ".join(expression.split())
    if not expression or expression.isspace():
        raise ExpressionRejected("empty")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise ExpressionRejected("syntax", type(error).__name__) from None
    literals: list[int] = []
    return _evaluate_node(tree.body, literals), literals


def _evaluate_node(node: ast.AST, literals: list[int]) -> Number:
    # Recursion depth is at most MAX_OPERATORS + 1: every level below the root is a BinOp operand.
    if isinstance(node, ast.Constant) and type(node.value) is int:
        literals.append(node.value)
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATIONS:
        left = _evaluate_node(node.left, literals)
        right = _evaluate_node(node.right, literals)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ExpressionRejected("div_by_zero")
        return _OPERATIONS[type(node.op)](left, right)
    # Pow, UnaryOp (unary minus), Name, Call, Tuple, float/bool/str constants, ...
    offender = node.op if isinstance(node, ast.BinOp) else node
    raise ExpressionRejected("disallowed", type(offender).__name__)


def parse_ground_truth(ground_truth: Any) -> tuple[Number, list[int]]:
    """Validate a CountDown ground truth ``{"target": int, "numbers": [int, ...]}``; raise naming the fix if bad.

    Returns the exact target (int, or Fraction for a non-integral one) and the numbers sorted.
    """
    if type(ground_truth) is dict:
        # Fast path for what the builder writes; anything else takes the checked path below.
        target, numbers = ground_truth.get("target"), ground_truth.get("numbers")
        if type(target) is int and type(numbers) is list and numbers and all(type(n) is int for n in numbers):
            return target, sorted(numbers)
    fix = "CountDown rows need reward_model.ground_truth = {'target': int, 'numbers': [int, ...]}; rebuild the data "
    fix += "with `python -m deltal.data.countdown`"
    if not isinstance(ground_truth, Mapping) or "target" not in ground_truth or "numbers" not in ground_truth:
        raise ValueError(f"{fix} (got {ground_truth!r:.200})")
    target, numbers = ground_truth["target"], ground_truth["numbers"]
    if isinstance(target, bool) or not isinstance(target, Real):
        raise TypeError(f"{fix} (target is {target!r:.50})")
    if isinstance(numbers, str | bytes | Mapping) or not hasattr(numbers, "__iter__"):
        raise TypeError(f"{fix} (numbers is {numbers!r:.100})")
    numbers = list(numbers)
    if not numbers or any(isinstance(n, bool) or not isinstance(n, Integral) for n in numbers):
        raise TypeError(f"{fix} (numbers is {numbers!r:.100})")
    target = Fraction(target)
    return (target.numerator if target.denominator == 1 else target), sorted(int(n) for n in numbers)


def _last_answer(response: str) -> str | None:
    # The last closed <answer>...</answer>; rfind keeps this linear on adversarial text.
    end = response.rfind(CLOSE_TAG)
    if end < 0:
        return None
    start = response.rfind(OPEN_TAG, 0, end)
    if start < 0:
        return None
    return response[start + len(OPEN_TAG) : end]


def _strict_answer(response: str) -> str | None:
    # The whole response (outer whitespace aside) must be exactly one <answer>EXPR</answer> with no tag inside.
    body = response.strip()
    if not (body.startswith(OPEN_TAG) and body.endswith(CLOSE_TAG)):
        return None
    inner = body[len(OPEN_TAG) : -len(CLOSE_TAG)]
    return None if "<" in inner else inner


def _score(expression: str | None, ground_truth: Any, format_score: float) -> dict[str, Any]:
    target, numbers = parse_ground_truth(ground_truth)
    if expression is None:
        return {"score": 0.0, "acc": 0.0, "format_ok": 0.0, "reason": "no_answer"}
    partial = float(format_score)
    # Cheap screen first: in a well-formed expression each ASCII digit run is one literal, so a wrong multiset is
    # already decided here, before parsing (most wrong answers in an RL batch stop at this line).
    if len(expression) <= MAX_EXPRESSION_CHARS and ALLOWED_CHARS.issuperset(expression) and expression.strip():
        if sorted(map(int, _DIGIT_RUNS.findall(expression))) != numbers:
            return {"score": partial, "acc": 0.0, "format_ok": 1.0, "reason": "wrong_numbers"}
    try:
        value, used = _evaluate(expression)
    except ExpressionRejected as rejected:
        return {"score": partial, "acc": 0.0, "format_ok": 1.0, "reason": rejected.reason}
    if sorted(used) != numbers:
        return {"score": partial, "acc": 0.0, "format_ok": 1.0, "reason": "wrong_numbers"}
    exact_ints = type(value) is int and type(target) is int
    if (value != target) if exact_ints else (abs(value - target) > TOLERANCE):
        return {"score": partial, "acc": 0.0, "format_ok": 1.0, "reason": "wrong_value"}
    return {"score": 1.0, "acc": 1.0, "format_ok": 1.0, "reason": "correct"}


def _check_response(solution_str: Any) -> str:
    if not isinstance(solution_str, str):
        raise TypeError(f"solution_str must be the decoded response text (str), got {type(solution_str).__name__}")
    return solution_str


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    format_score: float = 0.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score the LAST ``<answer>EXPR</answer>`` of a response; returns score, acc, format_ok and a reason code.

    ``kwargs`` absorbs what verl's reward loop may add (e.g. ``reward_router_address``); CountDown uses none.
    """
    return _score(_last_answer(_check_response(solution_str)), ground_truth, format_score)


def compute_score_strict(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    format_score: float = 0.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Like compute_score, but the whole stripped response must be exactly ``<answer>EXPR</answer>``.

    Trailing text or a truncated response scores 0 (reason ``not_exact_format``): with the lenient form, tiny
    models under RL learn to stop emitting EOS (docs/cpu-quickstart-sizing.md §2).
    """
    expression = _strict_answer(_check_response(solution_str))
    result = _score(expression, ground_truth, format_score)
    if expression is None:
        result["reason"] = "not_exact_format"
    return result
