"""``deltal_reward`` scores TRL completions (plain strings or conversational messages) with the scorer verl would use
for the row's ``data_source``, reading the ground truth from the ``reward_model`` column, and an unknown data source
stops with the list of known ones."""

import pytest

from deltal.trl import deltal_reward

TRUTH = {"style": "rule", "ground_truth": {"target": 24, "numbers": [2, 3, 4]}}


def test_plain_and_conversational_completions_score_like_verl():
    completions = [
        "<answer>2*3*4</answer>",
        [{"role": "assistant", "content": "<answer>2*3*4</answer>"}],
        [{"role": "assistant", "content": "<answer>2+3+4</answer>"}],
        "<answer>2*3*4</answer> and more",  # the strict easy reward wants the answer alone
    ]
    scores = deltal_reward(completions, data_source=["countdown_easy"] * 4, reward_model=[TRUTH] * 4)
    assert scores == [1.0, 1.0, 0.0, 0.0]
    lenient = deltal_reward(completions[-1:], data_source=["countdown"], reward_model=[TRUTH])
    assert lenient == [1.0]


def test_an_unknown_data_source_names_the_known_ones():
    with pytest.raises(KeyError, match="deltal has no reward for data_source='gsm8k'. Known data sources: .*countdown"):
        deltal_reward(["x"], data_source=["gsm8k"], reward_model=[TRUTH])
