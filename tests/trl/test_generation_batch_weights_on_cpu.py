"""ΔL weights over a TRL generation batch: the batch scope is the paper's w_i = L_i^-α / mean_j L_j^-α over every
completion, the group scope has mean 1 within each prompt's completions, masked-out completions (length 0) get
weight 0 and leave the others unchanged, and groups whose advantages are all equal leave the normaliser exactly as
deltal's verl option leaves groups of equal rewards. Computed by hand on small batches.
"""

import pytest
import torch

from deltal.algorithm.groups import constant_reward_rows
from deltal.trl.weights import generation_batch_weights

LENGTHS = torch.tensor([2.0, 4.0, 8.0, 4.0, 1.0, 3.0])  # 3 prompts x 2 completions
ADVANTAGES = torch.tensor([0.7, -0.7, 0.0, 0.0, -0.7, 0.7])  # the middle group: equal rewards


def test_batch_scope_is_the_papers_weight_over_the_whole_batch():
    weights, normaliser = generation_batch_weights(LENGTHS, ADVANTAGES, group_size=2, alpha=1.0)
    inverse = 1.0 / LENGTHS
    torch.testing.assert_close(weights, inverse / inverse.mean())
    torch.testing.assert_close(normaliser, LENGTHS)


def test_alpha_zero_gives_weight_one_which_is_dr_grpo():
    weights, _ = generation_batch_weights(LENGTHS, ADVANTAGES, group_size=2, alpha=0.0)
    torch.testing.assert_close(weights, torch.ones(6))


def test_group_scope_has_mean_one_within_each_prompt():
    weights, _ = generation_batch_weights(LENGTHS, ADVANTAGES, group_size=2, alpha=1.0, scope="group")
    # group 0: 1/2 and 1/4 -> mean 3/8 -> 4/3 and 2/3
    torch.testing.assert_close(weights[:2], torch.tensor([4 / 3, 2 / 3]))
    torch.testing.assert_close(weights.view(3, 2).mean(dim=1), torch.ones(3))


def test_a_masked_out_completion_gets_weight_zero_and_leaves_the_others_as_if_it_were_absent():
    lengths = LENGTHS.clone()
    lengths[1] = 0.0  # mask_truncated_completions zeroed its mask
    weights, _ = generation_batch_weights(lengths, ADVANTAGES, group_size=2, alpha=1.0)
    kept = torch.tensor([True, False, True, True, True, True])
    inverse = 1.0 / LENGTHS[kept]
    assert weights[1] == 0.0
    torch.testing.assert_close(weights[kept], inverse / inverse.mean())


def test_groups_of_equal_advantages_leave_the_normaliser_like_verls_equal_rewards():
    weights, normaliser = generation_batch_weights(
        LENGTHS, ADVANTAGES, group_size=2, alpha=1.0, exclude_zero_advantage=True
    )
    assert normaliser[2:4].eq(0).all() and weights[2:4].eq(0).all()
    kept = torch.tensor([True, True, False, False, True, True])
    inverse = 1.0 / LENGTHS[kept]
    torch.testing.assert_close(weights[kept], inverse / inverse.mean())
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # rewards behind ADVANTAGES
    verl_rows = constant_reward_rows(rewards, torch.arange(6) // 2, torch.ones(6, dtype=torch.bool))
    assert torch.equal(verl_rows, normaliser == 0)


def test_a_batch_that_does_not_split_into_groups_is_refused():
    with pytest.raises(ValueError, match="not a multiple of num_generations=4"):
        generation_batch_weights(LENGTHS, ADVANTAGES, group_size=4, alpha=1.0)
    with pytest.raises(ValueError, match="must both be"):
        generation_batch_weights(LENGTHS, ADVANTAGES[:3], group_size=2, alpha=1.0)
