"""A verl reward manager that gives 0 to truncated responses: ``StrictEndRewardManager``.

verl 0.9.1's reward loop decodes each response with ``skip_special_tokens=True`` before calling the reward function,
so a response cut off by the token budget whose text happens to end in ``</answer>`` looks complete to the scorer.
This manager is verl's own ``naive`` manager with one rule added: when the response's last valid token is not the
tokenizer's EOS token (it ran into ``data.max_response_length``), its score is 0 and its ``reason`` is
``truncated``; the other reward extras keep the scorer's keys so verl's per-key lists stay aligned.

Plugged in through verl's public seam for reward managers (no patching)::

    reward.reward_manager.source=importlib
    reward.reward_manager.name=StrictEndRewardManager
    reward.reward_manager.module.path=pkg://deltal.verl_adapter.reward_manager
"""

from __future__ import annotations

from verl import DataProto
from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

# The hydra overrides that select this manager (used by deltal.experiments.compare).
OVERRIDES = (
    "reward.reward_manager.source=importlib",
    "reward.reward_manager.name=StrictEndRewardManager",
    "reward.reward_manager.module.path=pkg://deltal.verl_adapter.reward_manager",
)


def ended_with_eos(data: DataProto, eos_token_ids: set[int]) -> bool:
    """Whether the (last) response of ``data`` ends in an EOS token rather than at the budget."""
    item = data[-1]
    response_ids = item.batch["responses"]  # (response_length,)
    valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
    return valid > 0 and int(response_ids[valid - 1]) in eos_token_ids


class StrictEndRewardManager(NaiveRewardManager):
    """verl's naive reward manager, except that a response without its EOS token scores 0 (reason ``truncated``)."""

    async def run_single(self, data: DataProto) -> dict:
        result = await super().run_single(data)
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos) if isinstance(eos, list) else {eos}
        if ended_with_eos(data, eos_ids):
            return result
        extras = dict(result["reward_extra_info"])
        for key in ("score", "acc", "format_ok"):
            if key in extras:
                extras[key] = 0.0
        if "reason" in extras:
            extras["reason"] = "truncated"
        return {"reward_score": 0.0, "reward_extra_info": extras}
