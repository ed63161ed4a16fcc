"""Group-scope ΔL weights and zero-advantage groups: hand-computed weights, mean 1 within every group, padding rows
weighted 0 without shifting their group, batch and group scope equal when every group has the same length profile,
Σ w = number of responses (so the coefficients still sum to 1/M), and which rows belong to constant-reward groups."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deltal.algorithm import delta_l_advantage_weights
from deltal.algorithm.groups import constant_reward_rows, group_delta_l_advantage_weights

alphas = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)


@st.composite
def grouped_lengths(draw) -> tuple[torch.Tensor, torch.Tensor]:
    """(lengths, group ids): 1..8 groups of 1..6 responses, some rows padding (length 0)."""
    sizes = draw(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=8))
    ids = [group for group, size in enumerate(sizes) for _ in range(size)]
    lengths = draw(st.lists(st.integers(min_value=0, max_value=4096), min_size=len(ids), max_size=len(ids)))
    order = draw(st.permutations(range(len(ids))))  # groups need not be contiguous in the batch
    return (
        torch.tensor([lengths[i] for i in order], dtype=torch.float32),
        torch.tensor([ids[i] for i in order], dtype=torch.int64),
    )


def test_group_weights_match_hand_computation():
    # group 0: 1/L = [1/2, 1/4], mean 3/8 -> [4/3, 2/3]; group 1: 1/L = [1/3, 1/9], mean 2/9 -> [3/2, 1/2]
    weights = group_delta_l_advantage_weights(torch.tensor([2.0, 4.0, 3.0, 9.0]), torch.tensor([0, 0, 1, 1]), 1.0)
    torch.testing.assert_close(weights, torch.tensor([4 / 3, 2 / 3, 3 / 2, 1 / 2]))


def test_padding_rows_get_zero_weight_and_leave_their_group_unchanged():
    weights = group_delta_l_advantage_weights(
        torch.tensor([2.0, 0.0, 4.0, 3.0, 9.0, 0.0]), torch.tensor([0, 0, 0, 1, 1, 2]), 1.0
    )
    torch.testing.assert_close(weights, torch.tensor([4 / 3, 0.0, 2 / 3, 3 / 2, 1 / 2, 0.0]))


@settings(max_examples=60, deadline=None)
@given(grouped_lengths(), alphas)
def test_group_weights_average_one_within_every_group(batch, alpha):
    lengths, group_ids = batch
    weights = group_delta_l_advantage_weights(lengths.double(), group_ids, alpha)
    assert bool(torch.isfinite(weights).all())
    assert weights[lengths == 0].abs().sum() == 0
    for group in group_ids.unique():
        members = (group_ids == group) & (lengths > 0)
        if members.any():
            assert weights[members].mean().item() == pytest.approx(1.0, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(grouped_lengths(), alphas)
def test_group_weights_sum_to_the_number_of_responses_so_the_estimate_stays_unbiased(batch, alpha):
    # x_i = w_i / (B·M) with B valid rows: Σ x_i = 1/M exactly when Σ w_i = B, whatever the lengths.
    lengths, group_ids = batch
    weights = group_delta_l_advantage_weights(lengths.double(), group_ids, alpha)
    assert weights.sum().item() == pytest.approx(float((lengths > 0).sum()), rel=1e-9, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=6), st.integers(1, 5), alphas)
def test_batch_and_group_scope_coincide_when_groups_share_a_length_profile(profile, num_groups, alpha):
    # every group holds the same lengths (in a different order): each group's mean is the batch mean
    lengths = torch.tensor([length for shift in range(num_groups) for length in profile[shift:] + profile[:shift]])
    group_ids = torch.arange(num_groups).repeat_interleave(len(profile))
    torch.testing.assert_close(
        group_delta_l_advantage_weights(lengths.float(), group_ids, alpha), delta_l_advantage_weights(lengths, alpha)
    )


def test_group_weights_differ_from_batch_weights_when_groups_differ_in_length():
    lengths, group_ids = torch.tensor([2.0, 4.0, 200.0, 400.0]), torch.tensor([0, 0, 1, 1])
    # batch scope hands the short group almost all the weight; group scope gives each group total weight 2
    assert delta_l_advantage_weights(lengths, 1.0)[:2].sum().item() > 3.9
    torch.testing.assert_close(
        group_delta_l_advantage_weights(lengths, group_ids, 1.0), torch.tensor([4 / 3, 2 / 3, 4 / 3, 2 / 3])
    )


def test_group_weights_reject_float_or_misshaped_group_ids():
    with pytest.raises(ValueError, match="as_torch_index"):
        group_delta_l_advantage_weights(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), 1.0)
    with pytest.raises(ValueError, match="2 responses"):
        group_delta_l_advantage_weights(torch.tensor([1.0, 2.0]), torch.tensor([0, 0, 1]), 1.0)


def test_constant_reward_rows_find_groups_whose_rewards_are_all_equal():
    # group 0 all 1 (constant), group 1 mixed, group 2 a singleton (verl gives it advantage r, not 0),
    # group 3 all 0 (constant), group 4: one valid row of reward 1 plus a padding row of reward 0 -> effectively a
    # singleton, so not constant; group 5: two valid 0s and a padding row with reward 1 -> constant.
    scores = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    group_ids = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5, 5])
    valid = torch.tensor([True] * 9 + [False, True, True, False])
    rows = constant_reward_rows(scores, group_ids, valid)
    assert rows.tolist() == [True, True, True, False, False, False, True, True, False, False, True, True, False]


def test_constant_reward_rows_compare_rewards_exactly():
    rows = constant_reward_rows(torch.tensor([0.5, 0.5 + 1e-7]), torch.tensor([0, 0]), torch.tensor([True, True]))
    assert rows.tolist() == [False, False]
