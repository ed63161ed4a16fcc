"""Strict reward of the ``countdown_trace`` task: trace lines, then exactly one answer that follows from the last line.

A response scores 1.0 only when all of these hold (else 0.0, with a ``reason`` code):

- it is one or more trace lines, each ``a op b=v,p op q=w`` (digits and one ``+ - * /`` per step) ending in a
  newline, followed by ``<answer>EXPR</answer>`` and nothing else (outer whitespace aside): trailing text after the
  answer, a missing answer or a response cut off mid-trace score 0 (``not_exact_format``);
- the answer is the candidate of the last trace line, written as ``deltal.data.countdown_trace`` renders it
  (``answer_not_last_line``): the answer must follow the trace, so RL cannot keep a reward while the trace drifts
  into text unrelated to the answer;
- the answer is a correct CountDown equation for the ground truth (``deltal.rewards.countdown``'s exact checks:
  numbers used exactly once, value equal to the target).

A response that reached the token budget without its end-of-turn token is a truncated one even if its text happens
to end in ``</answer>``; the decoded text cannot show that, so ``deltal.verl_adapter.reward_manager`` zeroes those.
Earlier trace lines are not checked for arithmetic: they are the search, and a wrong intermediate only costs length.
"""

from __future__ import annotations

import re
from typing import Any

from deltal.data.countdown_trace import Candidate, Step
from deltal.rewards.countdown import _check_response, _score

OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"
# A trace line: "3+5=8,8*7=56". Bounded digit runs keep the match linear and the numbers small.
_LINE = re.compile(r"(\d{1,6})([-+*/])(\d{1,6})=(\d{1,7}),(\d{1,7})([-+*/])(\d{1,6})=(\d{1,7})")
MAX_LINES = 256


def _last_candidate(trace: str) -> Candidate | None:
    # Every line must be a trace line; return the last one as a Candidate (None when malformed or empty).
    lines = trace.split("\n")
    if len(lines) < 2 or lines[-1] != "" or len(lines) > MAX_LINES + 1:
        return None
    match = None
    for line in lines[:-1]:
        match = _LINE.fullmatch(line)
        if match is None:
            return None
    a, op1, b, v1, p, op2, q, w = match.groups()
    first = Step(int(a), op1, int(b), int(v1))
    second = Step(int(p), op2, int(q), int(w))
    # The first step's value must be one operand of the second step (which one decides the parentheses).
    if second.left == first.value:
        return Candidate(first, second, first_on_left=True)
    if second.right == first.value:
        return Candidate(first, second, first_on_left=False)
    return None


def split_response(response: str) -> tuple[str, str] | None:
    """(trace, answer expression) of a well-formed response, or None (trailing text, no answer, cut-off trace)."""
    body = response.strip()
    start = body.rfind(OPEN_TAG)
    if start < 0 or not body.endswith(CLOSE_TAG):
        return None
    answer = body[start + len(OPEN_TAG) : -len(CLOSE_TAG)]
    if "<" in answer:
        return None
    return body[:start], answer


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one decoded response (special tokens skipped): score, acc, format_ok and a reason code.

    ``kwargs`` absorbs what verl's reward loop may add (e.g. ``reward_router_address``).
    """
    parts = split_response(_check_response(solution_str))
    if parts is None:
        result = _score(None, ground_truth, 0.0)
        return {**result, "reason": "not_exact_format"}
    trace, answer = parts
    last = _last_candidate(trace)
    if last is None:
        result = _score(None, ground_truth, 0.0)
        return {**result, "reason": "not_exact_format"}
    if answer.strip() != last.expression():
        result = _score(None, ground_truth, 0.0)
        return {**result, "format_ok": 1.0, "reason": "answer_not_last_line"}
    return _score(answer, ground_truth, 0.0)
