"""Aggregation coefficients and the Table 1 closed forms: ΔL coefficients are proportional to L_i^-α and sum to 1/M
(unbiased), ΔL at α=0 is Dr. GRPO Norm, the training weights reproduce them as w_i/(B·M) = x_i, each method's
coefficients match its Table 1 definition, and each closed form equals the generic linear-combination formula."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deltal.algorithm import (
    AGGREGATORS,
    aggregation_coefficients,
    closed_form_moments,
    delta_l_advantage_weights,
    linear_combination_moments,
)

MAX_LENGTH = 4096
group_lengths = st.lists(st.integers(min_value=1, max_value=MAX_LENGTH), min_size=1, max_size=32)
alphas = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)


def test_coefficients_of_each_method_match_hand_computation():
    # G = 3, L = [2, 4, 8], M = 8, ΣL = 14, Σ 1/L = 7/8
    lengths = torch.tensor([2.0, 4.0, 8.0], dtype=torch.float64)
    expected = {
        "grpo_norm": [1 / 6, 1 / 12, 1 / 24],  # 1 / (G L_i)
        "dapo_norm": [1 / 14] * 3,  # 1 / ΣL
        "dr_grpo_norm": [1 / 24] * 3,  # 1 / (G M)
        "delta_l": [4 / 56, 2 / 56, 1 / 56],  # (1/M) (1/L_i) / (7/8) = [1/2, 1/4, 1/8] / 7
    }
    for aggregator, values in expected.items():
        coefficients = aggregation_coefficients(aggregator, lengths, max_response_length=8)
        torch.testing.assert_close(coefficients, torch.tensor(values, dtype=torch.float64))


@settings(max_examples=150, deadline=None)
@given(lengths=group_lengths, alpha=alphas)
def test_delta_l_coefficients_are_proportional_to_inverse_length_powers_and_sum_to_one_over_m(lengths, alpha):
    batch = torch.tensor(lengths, dtype=torch.float64)
    coefficients = aggregation_coefficients("delta_l", batch, MAX_LENGTH, alpha=alpha)
    assert coefficients.sum().item() == pytest.approx(1 / MAX_LENGTH, rel=1e-12)
    ratios = coefficients / batch.pow(-alpha)  # x_i / L_i^-α must be the same constant for every i
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios), rtol=1e-10, atol=0.0)


@settings(max_examples=100, deadline=None)
@given(lengths=group_lengths)
def test_delta_l_at_alpha_zero_equals_dr_grpo_norm(lengths):
    batch = torch.tensor(lengths, dtype=torch.float64)
    torch.testing.assert_close(
        aggregation_coefficients("delta_l", batch, MAX_LENGTH, alpha=0.0),
        aggregation_coefficients("dr_grpo_norm", batch, MAX_LENGTH),
    )


@settings(max_examples=150, deadline=None)
@given(lengths=group_lengths, alpha=alphas, num_padding=st.integers(min_value=0, max_value=3))
def test_training_weights_divided_by_batch_size_and_m_are_the_delta_l_coefficients(lengths, alpha, num_padding):
    # verl's seq-mean-token-sum-norm divides each response's token sum by B·M, B = number of real responses;
    # padding rows (length 0) have no tokens, so they are in neither B nor the weights' means.
    batch = torch.tensor(lengths + [0] * num_padding, dtype=torch.float64)
    weights = delta_l_advantage_weights(batch, alpha=alpha).double()
    coefficients = aggregation_coefficients("delta_l", batch, MAX_LENGTH, alpha=alpha)
    torch.testing.assert_close(weights / (len(lengths) * MAX_LENGTH), coefficients, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_padding_rows_get_zero_coefficients_and_do_not_count_in_the_group(aggregator):
    lengths = torch.tensor([3.0, 9.0, 27.0], dtype=torch.float64)
    padded = torch.tensor([0.0, 3.0, 9.0, 0.0, 27.0], dtype=torch.float64)
    coefficients = aggregation_coefficients(aggregator, padded, max_response_length=32)
    assert coefficients[[0, 3]].tolist() == [0.0, 0.0]
    torch.testing.assert_close(coefficients[[1, 2, 4]], aggregation_coefficients(aggregator, lengths, 32))


@pytest.mark.parametrize("aggregator", AGGREGATORS)
def test_a_group_of_only_padding_rows_gets_zero_coefficients(aggregator):
    assert aggregation_coefficients(aggregator, torch.zeros(4), 16).tolist() == [0.0] * 4


def test_coefficients_keep_the_floating_dtype_of_the_lengths():
    assert aggregation_coefficients("delta_l", torch.tensor([1.0, 2.0]), 4).dtype == torch.float32
    assert aggregation_coefficients("delta_l", torch.tensor([1, 2]), 4).dtype == torch.float32
    assert aggregation_coefficients("delta_l", torch.tensor([1.0, 2.0], dtype=torch.float64), 4).dtype == (
        torch.float64
    )


def test_unknown_aggregator_error_lists_the_known_ones():
    with pytest.raises(ValueError, match="grpo_norm, dapo_norm, dr_grpo_norm, delta_l"):
        aggregation_coefficients("token_mean", torch.tensor([1.0]), 4)


def test_lengths_above_the_maximum_are_rejected():
    with pytest.raises(ValueError, match="max_response_length"):
        aggregation_coefficients("dr_grpo_norm", torch.tensor([1.0, 9.0]), 8)


@settings(max_examples=150, deadline=None)
@given(
    lengths=group_lengths,
    alpha=alphas,
    token_variance=st.floats(min_value=1e-3, max_value=1e3),
    grad_norm=st.floats(min_value=1e-2, max_value=1e2),
)
def test_closed_forms_equal_the_generic_formula_for_every_aggregator(lengths, alpha, token_variance, grad_norm):
    batch = torch.tensor(lengths, dtype=torch.float64)
    for aggregator in AGGREGATORS:
        coefficients = aggregation_coefficients(aggregator, batch, MAX_LENGTH, alpha=alpha)
        generic = linear_combination_moments(coefficients, batch, token_variance, grad_norm=grad_norm)
        closed = closed_form_moments(aggregator, batch, token_variance, MAX_LENGTH, alpha=alpha, grad_norm=grad_norm)
        assert closed.expectation_scale == pytest.approx(generic.expectation_scale, rel=1e-9), aggregator
        assert closed.variance == pytest.approx(generic.variance, rel=1e-9), aggregator
        assert closed.cv == pytest.approx(generic.cv, rel=1e-9), aggregator


def test_table_one_relations_between_the_methods_hold():
    # Table 1: ΔL(α=1) has GRPO's CV; DAPO and Dr. GRPO share a CV; GRPO/DAPO expectations depend on L.
    lengths = torch.tensor([10.0, 200.0, 35.0, 4000.0, 700.0], dtype=torch.float64)
    moments = {name: closed_form_moments(name, lengths, 2.0, MAX_LENGTH) for name in AGGREGATORS}
    assert moments["delta_l"].cv == pytest.approx(moments["grpo_norm"].cv, rel=1e-12)
    assert moments["dapo_norm"].cv == pytest.approx(moments["dr_grpo_norm"].cv, rel=1e-12)
    assert moments["delta_l"].cv < moments["dr_grpo_norm"].cv
    assert moments["delta_l"].expectation_scale == moments["dr_grpo_norm"].expectation_scale == 1 / MAX_LENGTH
    shifted = {name: closed_form_moments(name, lengths * 2, 2.0, 2 * MAX_LENGTH) for name in AGGREGATORS}
    assert shifted["grpo_norm"].expectation_scale == pytest.approx(moments["grpo_norm"].expectation_scale / 2)
    assert shifted["dapo_norm"].expectation_scale == pytest.approx(moments["dapo_norm"].expectation_scale / 2)


def test_generic_moments_of_a_zero_sum_combination_have_infinite_cv():
    moments = linear_combination_moments([0.5, -0.5], [4.0, 4.0], token_variance=1.0)
    assert moments.expectation_scale == 0.0
    assert moments.variance == pytest.approx(2.0)  # V Σ x² L = 0.25·4 + 0.25·4
    assert math.isinf(moments.cv)


def test_generic_moments_reject_a_nonzero_coefficient_on_a_padding_row():
    with pytest.raises(ValueError, match="padding"):
        linear_combination_moments([0.1, 0.2], [0.0, 5.0], token_variance=1.0)


def test_closed_forms_reject_a_group_without_valid_responses():
    with pytest.raises(ValueError, match="at least one response"):
        closed_form_moments("grpo_norm", [0.0, 0.0], token_variance=1.0, max_response_length=8)
