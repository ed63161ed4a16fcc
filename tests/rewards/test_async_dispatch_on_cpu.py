"""The async reward entry routes data sources like the sync one and awaits a task's async scorer when it has one."""

import asyncio

import pytest

import deltal.rewards as rewards
import deltal.rewards.math as math_rewards

GROUND_TRUTH = {"target": 24, "numbers": [2, 3, 4]}


def test_async_entry_scores_countdown_like_the_sync_entry():
    response = "<think>2*3*4</think><answer>2 * 3 * 4</answer>"
    sync = rewards.compute_score("countdown", response, GROUND_TRUTH)
    asynchronous = asyncio.run(rewards.compute_score_async("countdown", response, GROUND_TRUTH))
    assert asynchronous == sync
    assert asynchronous["score"] == 1.0
    assert asynchronous["data_source"] == "countdown"  # kept in verl's validation dumps for per-dataset Pass@k


def test_async_entry_awaits_the_math_async_scorer(monkeypatch):
    calls = []

    async def fake_async(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
        calls.append((data_source, solution_str, ground_truth))
        return {"score": 1.0, "acc": True, "status": "equal"}

    monkeypatch.setattr(math_rewards, "compute_score_async", fake_async)
    result = asyncio.run(rewards.compute_score_async("math500", r"so \boxed{1/2}", "0.5"))
    assert result == {"score": 1.0, "acc": True, "status": "equal", "data_source": "math500"}
    assert calls == [("math500", r"so \boxed{1/2}", "0.5")]


def test_async_entry_names_the_known_sources_for_an_unknown_one():
    with pytest.raises(KeyError, match="Known data sources"):
        asyncio.run(rewards.compute_score_async("gsm8k", "x", "1"))
