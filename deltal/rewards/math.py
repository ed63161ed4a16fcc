"""Math reward: 1 if the last ``\\boxed{}`` answer of a response equals the ground truth, else 0.

verl custom-reward functions (signature ``(data_source, solution_str, ground_truth, extra_info=None, **kwargs)``),
returning ``{"score": float, "acc": float, "status": str}``:

- :func:`compute_score_async` for training: verl's reward managers (``naive``, ``dapo``) await a coroutine scorer on
  their event loop, so every response in flight in a reward-loop worker is pending at once and the micro-batcher
  (``deltal.rewards.math_client``) sends them to the server as one ``/verify`` call per batch.
- :func:`compute_score`, the same in blocking form. verl runs a blocking scorer in its loop's thread pool, so
  batches are only as large as that pool (``min(32, cpus + 4)`` threads); fine for evaluation scripts.

Launch-script keys for a math run (all data sources are math, so the math scorer can be named directly)::

    reward.custom_reward_function.path=pkg://deltal.rewards.math
    reward.custom_reward_function.name=compute_score_async
    reward.reward_manager.name=naive        # or dapo, with reward.reward_kwargs.overlong_buffer_cfg for soft punishment

The DAPO manager awaits the same coroutine and then adds its overlong penalty to ``score``, so batching and soft
punishment compose. Start the server first (``bash server/math/start.sh``) and call
:func:`deltal.rewards.math_client.check_server_health` before Ray starts. A server that stays unreachable raises a
RuntimeError that stops the run; it is never turned into zero rewards.

Statuses: ``exact_match`` (normalised strings equal; no server call), ``no_boxed_answer`` (nothing to check; no
server call), ``too_long`` / ``gold_too_long`` (the boxed answer or the ground truth is longer than the server
parses, ``MAX_ANSWER_CHARS``; never cut, since a cut answer can read as another one; no server call), else the
server's (``server/math/README.md``): ``equal``, ``not_equal``, ``parse_error``, ``gold_parse_error``, ``timeout``,
``memory_limit``, ``worker_crashed``, ``pool_broken``, ``deadline_exceeded``, ``internal_error``. Only
``exact_match`` and ``equal`` score 1.
"""

from __future__ import annotations

import asyncio
import numbers
from typing import Any

from deltal.rewards.math_answer import MAX_ANSWER_CHARS, extract_boxed_answer, normalize_answer
from deltal.rewards.math_client import check_server_health, shared_batcher

__all__ = ["check_server_health", "compute_score", "compute_score_async"]

CORRECT_STATUSES = frozenset({"exact_match", "equal"})


def _ground_truth_text(ground_truth: Any) -> str:
    if isinstance(ground_truth, bool) or not isinstance(ground_truth, (str, numbers.Number)):
        raise TypeError(
            f"math ground_truth must be a string or a number, got {type(ground_truth).__name__}; rebuild the "
            "dataset with `python -m deltal.data.math` (it stores reward_model.ground_truth as a string)"
        )
    if isinstance(ground_truth, numbers.Real) and float(ground_truth).is_integer():
        ground_truth = int(ground_truth)  # AMC stores 142.0 for 142
    text = str(ground_truth).strip()
    if not text:
        raise ValueError("math ground_truth is empty; the dataset row has no answer to compare against")
    return text


def _result(status: str) -> dict[str, Any]:
    correct = status in CORRECT_STATUSES
    return {"score": 1.0 if correct else 0.0, "acc": 1.0 if correct else 0.0, "status": status}


def _local_verdict(solution_str: str, ground_truth: Any) -> tuple[str | None, str, str]:
    """Decide without the server when possible: (status or None, prediction, gold)."""
    gold = _ground_truth_text(ground_truth)
    answer = extract_boxed_answer(solution_str)
    if answer is None:
        return "no_boxed_answer", "", gold
    if normalize_answer(answer) == normalize_answer(gold):
        return "exact_match", answer, gold
    if len(gold) > MAX_ANSWER_CHARS:
        return "gold_too_long", answer, gold
    if len(answer) > MAX_ANSWER_CHARS:
        return "too_long", answer, gold
    return None, answer, gold


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs
) -> dict[str, Any]:
    """Blocking math reward for one response (see the module docstring for the batched async form)."""
    status, prediction, gold = _local_verdict(solution_str, ground_truth)
    if status is None:
        status = shared_batcher().submit(prediction, gold).result()
    return _result(status)


async def compute_score_async(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs
) -> dict[str, Any]:
    """Math reward for one response, awaited by verl's reward loop; concurrent calls share one ``/verify`` request."""
    status, prediction, gold = _local_verdict(solution_str, ground_truth)
    if status is None:
        status = await asyncio.wrap_future(shared_batcher().submit(prediction, gold))
    return _result(status)
