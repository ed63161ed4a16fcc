"""deltal.rewards.compute_score routes each data_source to its task's scorer (countdown lenient, countdown_easy
strict) and rejects an unknown data_source with an error that lists the known ones."""

import pytest

from deltal.rewards import SCORERS, compute_score, resolve_scorer
from deltal.rewards.countdown import compute_score as countdown_score
from deltal.rewards.countdown import compute_score_strict as countdown_strict_score

GT = {"target": 6, "numbers": [1, 2, 3]}


def test_countdown_sources_resolve_to_the_countdown_scorers():
    assert resolve_scorer("countdown") is countdown_score
    assert resolve_scorer("countdown_easy") is countdown_strict_score


def test_countdown_routes_to_the_lenient_reward():
    # Trailing text after the answer is fine for the lenient reward...
    assert compute_score("countdown", "<answer>1+2+3</answer> done", GT)["score"] == 1.0


def test_countdown_easy_routes_to_the_strict_reward():
    # ...but not for the strict one used by the easy (quickstart) variant.
    result = compute_score("countdown_easy", "<answer>1+2+3</answer> done", GT)
    assert (result["score"], result["reason"]) == (0.0, "not_exact_format")
    assert compute_score("countdown_easy", "<answer>1+2+3</answer>", GT)["score"] == 1.0


def test_dispatcher_passes_reward_kwargs_through():
    result = compute_score("countdown", "<answer>1+2*3</answer>", GT, extra_info={"index": 0}, format_score=0.1)
    assert result["score"] == 0.1


def test_unknown_data_source_error_lists_the_known_ones():
    with pytest.raises(KeyError) as info:
        compute_score("gsm8k", "<answer>1</answer>", GT)
    message = str(info.value)
    assert "gsm8k" in message
    for known in SCORERS:
        assert known in message
