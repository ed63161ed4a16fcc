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
Under RL that lets the policy shorten its search (docs/experiments.md, 2026-11-26), which removes the length spread
the task was built for.

``compute_score_full`` (data source ``countdown_trace_full``) closes that door: it checks every line. A response
scores 1.0 only when its trace is the whole search in the fixed order, exactly the candidates
``deltal.data.countdown_trace.candidates`` lists up to and including the first one that reaches the target, followed
by that candidate's answer. A correct response is then unique and its length is set by the problem's depth, so RL
cannot make it shorter. Its extra ``lines_ok`` counts the leading lines that match the search (a dense view of
progress that the binary score hides).

That alone did not keep the lengths (docs/experiments.md, 2026-12-03): the deep problems stay unsolved, their groups
are all wrong and carry no gradient, and the policy learns from the shallow ones to stop its search early everywhere,
so its (wrong) answers to deep problems shrink too. ``compute_score_partial`` (data source
``countdown_trace_partial``) adds partial credit: a response that is not correct scores ``PARTIAL_CREDIT`` times the
part of the search it wrote correctly, less the lines it wrote past the first hit, over the depth,
``(lines_ok − lines past the hit) / depth``. Writing more of a deep problem's search is rewarded, so stopping early is
not free; going past the hit costs as much as stopping that many lines short, so never stopping is not free either (a
first version credited a whole search past its hit like a finished one, and the policy stopped stopping). ``acc``
stays exact correctness, so held-out accuracy (verl's ``val-core``) means the same under both.
"""

from __future__ import annotations

import re
from typing import Any

from deltal.data.countdown_trace import Candidate, Step, trace
from deltal.rewards.countdown import _check_response, _score, parse_ground_truth

OPEN_TAG, CLOSE_TAG = "<answer>", "</answer>"
# A trace line: "3+5=8,8*7=56". Bounded digit runs keep the match linear and the numbers small.
_LINE = re.compile(r"(\d{1,6})([-+*/])(\d{1,6})=(\d{1,7}),(\d{1,7})([-+*/])(\d{1,6})=(\d{1,7})")
MAX_LINES = 256
# Reward of a wrong response per unit of the search written correctly (countdown_trace_partial): below 1, so that
# finishing the search and stopping at its first hit is always worth more than any prefix of it.
PARTIAL_CREDIT = 0.5


def _trace_lines(trace_text: str) -> list[str] | None:
    # The lines of a trace, each a well-formed trace line ending in a newline; None when malformed or empty.
    lines = trace_text.split("\n")
    if len(lines) < 2 or lines[-1] != "" or len(lines) > MAX_LINES + 1:
        return None
    lines = lines[:-1]
    return lines if all(_LINE.fullmatch(line) for line in lines) else None


def _last_candidate(trace_text: str) -> Candidate | None:
    # Every line must be a trace line; return the last one as a Candidate (None when malformed or empty).
    lines = _trace_lines(trace_text)
    if lines is None:
        return None
    a, op1, b, v1, p, op2, q, w = _LINE.fullmatch(lines[-1]).groups()
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
    trace_text, answer = parts
    last = _last_candidate(trace_text)
    if last is None:
        result = _score(None, ground_truth, 0.0)
        return {**result, "reason": "not_exact_format"}
    if answer.strip() != last.expression():
        result = _score(None, ground_truth, 0.0)
        return {**result, "format_ok": 1.0, "reason": "answer_not_last_line"}
    return _score(answer, ground_truth, 0.0)


def _search_in_order(ground_truth: Any) -> list[Candidate]:
    # The problem's whole search up to its first hit; the numbers' prompt order fixes the order of the search.
    target, _ = parse_ground_truth(ground_truth)  # validates, and names the fix for a malformed row
    numbers = [int(n) for n in ground_truth["numbers"]]
    lines = trace(numbers, target) if isinstance(target, int) and len(numbers) == 3 else None
    if lines is None:
        raise ValueError(
            f"countdown_trace_full: the search over {numbers} never reaches {target!r}; build the data with "
            "`python -m deltal.data.countdown_trace --reward full_trace`"
        )
    return lines


def compute_score_full(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one response of ``countdown_trace_full``: 1.0 only for the whole search in order, then its answer.

    Returns score, acc, format_ok, ``lines_ok`` (leading lines equal to the search) and a reason code:
    ``not_exact_format``, ``wrong_line`` (a line is not the search's line at that position), ``stopped_before_hit``
    (every line right but the first hit not reached), ``past_first_hit`` (the search went on after its first hit),
    ``answer_not_last_line``, or the CountDown check's own codes.
    """
    expected = _search_in_order(ground_truth)
    parts = split_response(_check_response(solution_str))
    lines = None if parts is None else _trace_lines(parts[0])
    if lines is None:
        return {**_score(None, ground_truth, 0.0), "lines_ok": 0.0, "reason": "not_exact_format"}
    lines_ok = 0
    for written, wanted in zip(lines, expected, strict=False):
        if written != wanted.line():
            break
        lines_ok += 1
    if lines_ok < min(len(lines), len(expected)):
        reason = "wrong_line"
    elif len(lines) < len(expected):
        reason = "stopped_before_hit"
    elif len(lines) > len(expected):
        reason = "past_first_hit"
    elif parts[1].strip() != expected[-1].expression():
        reason = "answer_not_last_line"
    else:
        return {**_score(parts[1].strip(), ground_truth, 0.0), "lines_ok": float(lines_ok)}
    return {**_score(None, ground_truth, 0.0), "format_ok": 1.0, "lines_ok": float(lines_ok), "reason": reason}


def compute_score_partial(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score one response of ``countdown_trace_partial``: 1.0 when correct (as ``compute_score_full``), else
    ``PARTIAL_CREDIT × max(0, lines_ok − lines past the first hit) / depth``; ``acc`` is 1 only when correct."""
    result = compute_score_full(data_source, solution_str, ground_truth, extra_info, **kwargs)
    if result["score"] > 0:
        return result
    depth = len(_search_in_order(ground_truth))
    parts = split_response(_check_response(solution_str))
    written = _trace_lines(parts[0]) if parts is not None else None
    past_hit = max(0, len(written) - depth) if written is not None else 0
    return {**result, "score": PARTIAL_CREDIT * max(0.0, result["lines_ok"] - past_hit) / depth}
