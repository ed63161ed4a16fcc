"""One reward entry for every task: ``deltal.rewards.compute_score`` (and its async twin).

Point verl at it with ``reward.custom_reward_function.path=pkg://deltal.rewards`` and
``reward.custom_reward_function.name=compute_score_async`` (the launch scripts do this; the async twin
lets math responses of one step share batched server requests). It dispatches on ``data_source``; the
task modules are imported on first use so that CountDown runs never import the math client and vice versa.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# data_source -> "module:function". Every scorer takes verl's custom-reward signature
# (data_source, solution_str, ground_truth, extra_info=None, **kwargs) and returns a dict with "score".
SCORERS: dict[str, str] = {
    "countdown": "deltal.rewards.countdown:compute_score",
    "countdown_easy": "deltal.rewards.countdown:compute_score_strict",
    "countdown_trace": "deltal.rewards.countdown_trace:compute_score",
    "countdown_trace_full": "deltal.rewards.countdown_trace:compute_score_full",
    "countdown_trace_partial": "deltal.rewards.countdown_trace:compute_score_partial",
    "open_reasoner_zero": "deltal.rewards.math:compute_score",
    "math500": "deltal.rewards.math:compute_score",
    "aime2024": "deltal.rewards.math:compute_score",
    "amc": "deltal.rewards.math:compute_score",
    "minerva": "deltal.rewards.math:compute_score",
}


def resolve_scorer(data_source: str) -> Callable[..., dict]:
    """Return the scoring function registered for ``data_source``, or raise naming the known ones."""
    target = SCORERS.get(data_source)
    if target is None:
        known = ", ".join(sorted(SCORERS))
        raise KeyError(
            f"deltal has no reward for data_source={data_source!r}. Known data sources: {known}. "
            "Rebuild the dataset with a deltal builder (python -m deltal.data.<task>) or add a scorer to "
            "deltal.rewards.SCORERS."
        )
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def _tagged(result: dict, data_source: str) -> dict:
    # verl dumps reward extras next to each validation sample (trainer.validation_data_dir); the data source there
    # lets deltal.analysis compute exact Pass@k per eval set.
    return {**result, "data_source": data_source}


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs
) -> dict:
    """verl custom reward function: score one response by its task's rule (a dict with ``score``, ``acc``, ...)."""
    scorer = resolve_scorer(data_source)
    return _tagged(scorer(data_source, solution_str, ground_truth, extra_info=extra_info, **kwargs), data_source)


async def compute_score_async(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **kwargs
) -> dict:
    """Async twin for verl's reward loop, which awaits coroutine scorers concurrently.

    A task whose scorer has an ``<name>_async`` sibling (math: it coalesces concurrent calls into batched
    server requests) is awaited through it; the others are cheap and run inline.
    """
    scorer = resolve_scorer(data_source)
    twin = getattr(importlib.import_module(scorer.__module__), f"{scorer.__name__}_async", None)
    if twin is not None:
        result = await twin(data_source, solution_str, ground_truth, extra_info=extra_info, **kwargs)
    else:
        result = scorer(data_source, solution_str, ground_truth, extra_info=extra_info, **kwargs)
    return _tagged(result, data_source)
