"""A TRL reward function for deltal's datasets: the same scorer verl would call, per ``data_source``.

deltal's data builders write verl's RL rows (``deltal.data.rl_format``): ``prompt`` (chat messages), ``data_source``
and ``reward_model.ground_truth``. TRL hands every dataset column to a reward function as a keyword list, one entry
per completion (``trl/trainer/grpo_trainer.py``, ``GRPOTrainer._calculate_rewards``), and decodes completions with
``skip_special_tokens=True`` as verl's reward loop does, so a completion scores the same in both trainers.
Library module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from deltal.rewards import resolve_scorer


def completion_text(completion: str | Sequence[Mapping[str, Any]]) -> str:
    """The generated text: TRL passes a string for plain prompts and ``[{"role": "assistant", "content": ...}]``
    for conversational ones."""
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"]


def deltal_reward(
    completions: Sequence[Any], data_source: Sequence[str], reward_model: Sequence[Mapping[str, Any]], **kwargs: Any
) -> list[float]:
    """Score each completion with deltal's reward for its ``data_source`` (``deltal.rewards.SCORERS``).

    Pass it to TRL as ``reward_funcs=deltal_reward`` with a dataset read from a deltal builder's parquet files. An
    unknown data source raises KeyError naming the known ones; math sources need the math server running
    (``deltal serve-math``).
    """
    scores = []
    for completion, source, model_info in zip(completions, data_source, reward_model, strict=True):
        result = resolve_scorer(source)(source, completion_text(completion), model_info["ground_truth"])
        scores.append(float(result["score"]))
    return scores
