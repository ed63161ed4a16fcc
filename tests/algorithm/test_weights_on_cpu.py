"""ΔL advantage weights w_i = L_i^-α / mean_j L_j^-α: hand-computed values, padding rows (length 0) that get weight
0 without shifting the others, invariance to the length scale, mean 1 over valid rows, argument errors, and
overlong filtering."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deltal.algorithm import delta_l_advantage_weights, filter_overlong, overlong_mask, response_lengths

valid_lengths = st.lists(st.integers(min_value=1, max_value=32768), min_size=1, max_size=64)
alphas = st.floats(min_value=0.0, max_value=3.0, allow_nan=False)


def test_response_lengths_count_mask_tokens_as_float32():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    lengths = response_lengths(mask)
    assert lengths.dtype == torch.float32
    assert lengths.tolist() == [3.0, 1.0, 0.0]


def test_response_lengths_rejects_a_vector_of_lengths():
    with pytest.raises(ValueError, match="2-D"):
        response_lengths(torch.tensor([3, 1]))


def test_delta_l_weights_at_alpha_one_match_hand_computation():
    # L = [2, 4, 8]; 1/L = [1/2, 1/4, 1/8]; mean(1/L) = (4 + 2 + 1) / 8 / 3 = 7/24
    # w = (1/L) / (7/24) = [12/7, 6/7, 3/7]
    weights = delta_l_advantage_weights(torch.tensor([2.0, 4.0, 8.0]), alpha=1.0)
    expected = torch.tensor([12 / 7, 6 / 7, 3 / 7])
    torch.testing.assert_close(weights, expected)


def test_delta_l_weights_at_alpha_half_match_hand_computation():
    # L = [1, 4, 16]; L^-1/2 = [1, 1/2, 1/4]; mean = (1.75) / 3 = 7/12
    # w = [12/7, 6/7, 3/7] (the same ratios as above, because sqrt spaces these lengths by a factor 2)
    weights = delta_l_advantage_weights(torch.tensor([1.0, 4.0, 16.0]), alpha=0.5)
    expected = torch.tensor([12 / 7, 6 / 7, 3 / 7])
    torch.testing.assert_close(weights, expected)


def test_delta_l_weights_at_alpha_zero_are_all_one():
    # L^0 = 1 for every response: ΔL(α=0) is Dr. GRPO Norm, the advantages are left untouched
    weights = delta_l_advantage_weights(torch.tensor([3.0, 70.0, 1000.0, 5.0]), alpha=0.0)
    torch.testing.assert_close(weights, torch.ones(4))


def test_padding_rows_get_zero_weight_and_leave_other_weights_unchanged():
    lengths = torch.tensor([2.0, 4.0, 8.0])
    padded = torch.tensor([0.0, 2.0, 4.0, 0.0, 8.0, 0.0])
    weights = delta_l_advantage_weights(padded, alpha=1.0)
    assert torch.isfinite(weights).all()
    assert weights[[0, 3, 5]].tolist() == [0.0, 0.0, 0.0]
    torch.testing.assert_close(weights[[1, 2, 4]], delta_l_advantage_weights(lengths, alpha=1.0))


def test_a_batch_of_only_padding_rows_gets_zero_weights_not_nan():
    weights = delta_l_advantage_weights(torch.zeros(5), alpha=1.0)
    assert weights.tolist() == [0.0] * 5


def test_delta_l_weights_are_float32_for_integer_lengths():
    weights = delta_l_advantage_weights(torch.tensor([5, 10, 20]), alpha=1.0)
    assert weights.dtype == torch.float32


@pytest.mark.parametrize("alpha", [-0.5, math.nan, math.inf, "one", None])
def test_delta_l_weights_reject_invalid_alpha_with_a_fix(alpha):
    with pytest.raises(ValueError, match="alpha"):
        delta_l_advantage_weights(torch.tensor([1.0, 2.0]), alpha=alpha)


def test_delta_l_weights_reject_a_mask_instead_of_lengths():
    with pytest.raises(ValueError, match="response_lengths"):
        delta_l_advantage_weights(torch.ones(2, 3), alpha=1.0)


@settings(max_examples=200, deadline=None)
@given(lengths=valid_lengths, alpha=alphas, num_padding=st.integers(min_value=0, max_value=4))
def test_delta_l_weights_are_finite_positive_with_mean_one_on_valid_rows(lengths, alpha, num_padding):
    batch = torch.tensor(lengths + [0] * num_padding, dtype=torch.float32)
    weights = delta_l_advantage_weights(batch, alpha=alpha)
    valid_weights = weights[: len(lengths)]
    assert torch.isfinite(weights).all()
    assert (valid_weights > 0).all()
    assert (weights[len(lengths) :] == 0).all()
    assert valid_weights.double().mean().item() == pytest.approx(1.0, rel=1e-5)


@settings(max_examples=200, deadline=None)
@given(lengths=valid_lengths, alpha=alphas, scale=st.floats(min_value=1e-3, max_value=1e3))
def test_delta_l_weights_are_scale_invariant(lengths, alpha, scale):
    batch = torch.tensor(lengths, dtype=torch.float32)
    torch.testing.assert_close(
        delta_l_advantage_weights(batch * scale, alpha=alpha),
        delta_l_advantage_weights(batch, alpha=alpha),
        rtol=1e-4,
        atol=1e-6,
    )


@settings(max_examples=100, deadline=None)
@given(lengths=valid_lengths, alpha=alphas)
def test_delta_l_weights_are_proportional_to_inverse_length_powers(lengths, alpha):
    batch = torch.tensor(lengths, dtype=torch.float64)
    weights = delta_l_advantage_weights(batch, alpha=alpha).double()
    reference = batch.pow(-alpha) / batch.pow(-alpha).mean()  # the formula without the mean-length rescaling
    torch.testing.assert_close(weights, reference, rtol=1e-5, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(min_value=1, max_value=8192), min_size=2, max_size=32), alpha=alphas)
@example(  # two equal lengths whose float32 weights came out 2 ulp apart
    lengths=[3, 40, 102, 160, 187, 251, 286, 25, 779, 936, 291, 2244, 6341, 1110, 6338, 8139, 3, 258, 448, 901, 130,
             3742, 4238],
    alpha=0.8237963179468044,
)  # fmt: skip
def test_longer_responses_never_get_larger_weights(lengths, alpha):
    batch = torch.tensor(lengths, dtype=torch.float32)
    weights = delta_l_advantage_weights(batch, alpha=alpha)
    order = torch.argsort(batch)
    # Equal lengths may round a float32 ulp apart (vectorised and scalar lanes of pow), so the slack is relative.
    assert (weights[order].diff() <= 1e-6 * weights.max()).all()


def test_overlong_mask_flags_responses_that_reached_the_limit():
    lengths = torch.tensor([10.0, 16.0, 15.0, 0.0, 17.0])
    assert overlong_mask(lengths, max_response_length=16).tolist() == [False, True, False, False, True]


def test_filter_overlong_zeroes_per_response_advantages_of_truncated_rows():
    advantages = torch.tensor([0.5, -1.0, 2.0])
    filtered = filter_overlong(advantages, torch.tensor([4.0, 8.0, 7.0]), max_response_length=8)
    assert filtered.tolist() == [0.5, 0.0, 2.0]
    assert advantages.tolist() == [0.5, -1.0, 2.0]  # the input is not modified in place


def test_filter_overlong_zeroes_every_token_of_truncated_rows():
    advantages = torch.arange(1.0, 13.0).reshape(3, 4)  # (bs=3, response_len=4)
    filtered = filter_overlong(advantages, torch.tensor([4.0, 2.0, 4.0]), max_response_length=4)
    assert filtered[0].tolist() == [0.0] * 4
    assert filtered[2].tolist() == [0.0] * 4
    assert filtered[1].tolist() == [5.0, 6.0, 7.0, 8.0]


def test_filter_overlong_rejects_mismatched_batch_sizes():
    with pytest.raises(ValueError, match="bs"):
        filter_overlong(torch.zeros(3, 4), torch.tensor([1.0, 2.0]), max_response_length=4)


@pytest.mark.parametrize("limit", [0, -3, math.nan, "long"])
def test_overlong_mask_rejects_a_nonpositive_limit(limit):
    with pytest.raises(ValueError, match="max_response_length"):
        overlong_mask(torch.tensor([1.0]), max_response_length=limit)
