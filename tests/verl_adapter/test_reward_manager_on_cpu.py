"""deltal's strict-end reward manager tells a response that ended with EOS from one that ran into the token budget,
which the decoded text (special tokens skipped) cannot show."""

import torch
from verl import DataProto

from deltal.verl_adapter.reward_manager import ended_with_eos


def test_reward_manager_sees_truncation_that_the_text_hides():
    eos, pad = 2, 0

    def item(response: list[int], width: int = 6) -> DataProto:
        ids = torch.tensor([response + [pad] * (width - len(response))])
        mask = torch.tensor([[1, 1] + [1] * len(response) + [0] * (width - len(response))])  # 2 prompt tokens
        return DataProto.from_dict(tensors={"responses": ids, "attention_mask": mask})

    assert ended_with_eos(item([7, 8, eos]), {eos})
    assert not ended_with_eos(item([7, 8, 9, 9, 9, 9]), {eos})  # ran into the budget: truncated
    assert ended_with_eos(item([7, 8, 9, 9, 9, eos]), {eos})  # EOS exactly at the budget is a finished response


class _CharTokenizer:
    """One token per character (id = ord + 10); ids 0-9 are specials, dropped by skip_special_tokens."""

    eos_token_id = 2

    def encode(self, text: str) -> list[int]:
        return [ord(char) + 10 for char in text]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join(chr(int(i) - 10) for i in ids if int(i) >= 10)


def _scored(manager, response: list[int]) -> dict:
    import numpy as np

    ids = torch.tensor([response])
    data = DataProto.from_dict(
        tensors={"responses": ids, "attention_mask": torch.ones((1, 2 + len(response)), dtype=torch.long)},
        non_tensors={
            "data_source": np.array(["countdown_trace"], dtype=object),
            "reward_model": np.array([{"ground_truth": {"target": 15, "numbers": [3, 5, 7]}}], dtype=object),
        },
    )
    return manager.loop.run_until_complete(manager.run_single(data))


def test_a_truncated_correct_looking_response_scores_zero_and_keeps_the_extra_keys():
    from deltal.rewards import compute_score
    from deltal.verl_adapter.reward_manager import StrictEndRewardManager

    tokenizer = _CharTokenizer()
    manager = StrictEndRewardManager(config=None, tokenizer=tokenizer, compute_score=compute_score)
    text = tokenizer.encode("3+5=8,8+7=15\n<answer>3+5+7</answer>")
    finished = _scored(manager, text + [tokenizer.eos_token_id])
    assert finished["reward_score"] == 1.0 and finished["reward_extra_info"]["reason"] == "correct"
    cut = _scored(manager, text)  # the same text, but the budget ended it: no EOS
    assert cut["reward_score"] == 0.0
    assert cut["reward_extra_info"]["reason"] == "truncated" and cut["reward_extra_info"]["acc"] == 0.0
    assert set(cut["reward_extra_info"]) == set(finished["reward_extra_info"])
