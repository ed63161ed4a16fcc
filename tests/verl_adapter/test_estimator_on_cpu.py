"""deltal's verl estimators compute GRPO advantages, then ΔL weights over the whole batch, as verl calls them.

Checked against verl 0.9.1's own GRPO estimator and against the paper's formula; padding rows (verl's batch
balancing appends rows with an all-zero mask) must not produce NaN or shift the other weights.
"""

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

from deltal.verl_adapter.estimator import pop_step_metrics

MAX_LEN = 8


def _config(alpha=1.0, norm=True, filter_overlong=False):
    return OmegaConf.create(
        {
            "norm_adv_by_std_in_grpo": norm,
            "filter_overlong_response": {"enable": filter_overlong},
            # The keys deltal's resolver derives; the estimators read nothing else of deltal's.
            "deltal": {"method": "delta_l", "alpha": alpha, "max_response_length": MAX_LEN},
        }
    )


def _batch(lengths, scores, uids):
    width = max(max(lengths), 1)
    mask = torch.zeros(len(lengths), width)
    rewards = torch.zeros(len(lengths), width)
    for i, (length, score) in enumerate(zip(lengths, scores, strict=True)):
        mask[i, :length] = 1
        if length:
            rewards[i, length - 1] = score  # outcome reward on the last token, as verl's reward loop writes it
    return rewards, mask, np.array(uids, dtype=object)


def test_delta_l_equals_verl_grpo_advantage_times_length_weights():
    lengths, scores, uids = [2, 4, 8, 4, 3, 6], [1.0, 0.0, 1.0, 0.0, 1.0, 1.0], ["a", "a", "a", "b", "b", "b"]
    rewards, mask, index = _batch(lengths, scores, uids)
    grpo, _ = get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=index)
    adv, returns = get_adv_estimator_fn("delta_l")(
        token_level_rewards=rewards, response_mask=mask, index=index, config=_config(alpha=1.0)
    )
    inv = torch.tensor([1 / n for n in lengths])
    weights = inv / inv.mean()  # w_i = L_i^-1 / mean_j L_j^-1
    torch.testing.assert_close(adv, grpo * weights[:, None], rtol=1e-5, atol=1e-6)
    assert torch.equal(adv, returns)


def test_delta_l_coefficients_match_the_paper_once_divided_by_batch_times_max_length():
    # With seq-mean-token-sum-norm and loss_scale_factor=M, response i's token sum is scaled by w_i/(B*M).
    lengths = [3, 5, 8, 1]
    rewards, mask, index = _batch(lengths, [1.0, 0.0, 0.0, 1.0], ["g"] * 4)
    alpha = 0.75
    adv, _ = get_adv_estimator_fn("delta_l")(
        token_level_rewards=rewards, response_mask=mask, index=index, config=_config(alpha=alpha)
    )
    grpo, _ = get_adv_estimator_fn("deltal_grpo")(
        token_level_rewards=rewards, response_mask=mask, index=index, config=_config()
    )
    w = adv[:, 0] / grpo[:, 0]
    x_paper = torch.tensor([n**-alpha for n in lengths]) / sum(n**-alpha for n in lengths) / MAX_LEN
    torch.testing.assert_close(w / (len(lengths) * MAX_LEN), x_paper, rtol=1e-5, atol=0)


def test_padding_rows_get_zero_advantage_and_do_not_shift_the_others():
    real = ([2, 4, 6], [1.0, 0.0, 1.0], ["a", "a", "a"])
    rewards, mask, index = _batch(*real)
    padded_rewards, padded_mask, padded_index = _batch(
        real[0] + [0, 0], real[1] + [0.0, 0.0], real[2] + ["pad0", "pad1"]
    )
    est = get_adv_estimator_fn("delta_l")
    adv, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=_config())
    padded_adv, _ = est(
        token_level_rewards=padded_rewards, response_mask=padded_mask, index=padded_index, config=_config()
    )
    assert torch.isfinite(padded_adv).all()
    torch.testing.assert_close(padded_adv[:3], adv)
    assert torch.count_nonzero(padded_adv[3:]) == 0


def test_norm_adv_by_std_is_read_from_the_config_since_verl_does_not_pass_it():
    rewards, mask, index = _batch([3, 3, 3], [1.0, 0.0, 0.0], ["a"] * 3)
    est = get_adv_estimator_fn("deltal_grpo")
    adv_std, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=_config(norm=True))
    adv_raw, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=_config(norm=False))
    # scores 1,0,0: mean 1/3, unbiased std 0.57735 -> raw advantages 2/3, -1/3, -1/3
    torch.testing.assert_close(adv_raw[:, 0], torch.tensor([2 / 3, -1 / 3, -1 / 3]))
    torch.testing.assert_close(adv_std[:, 0], adv_raw[:, 0] / (math.sqrt(1 / 3) + 1e-6), rtol=1e-5, atol=1e-6)


def test_overlong_filtering_zeroes_responses_that_reached_the_maximum_length():
    rewards, mask, index = _batch([MAX_LEN, 3, 5], [0.0, 1.0, 0.0], ["a"] * 3)
    est = get_adv_estimator_fn("deltal_grpo")
    kept, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=_config(filter_overlong=True))
    plain, _ = est(token_level_rewards=rewards, response_mask=mask, index=index, config=_config())
    assert torch.count_nonzero(kept[0]) == 0 and torch.count_nonzero(plain[0]) > 0
    torch.testing.assert_close(kept[1:], plain[1:])


def test_step_metrics_describe_weights_lengths_and_truncation_then_clear():
    rewards, mask, index = _batch([2, 8, 4, 0], [1.0, 0.0, 1.0, 0.0], ["a", "a", "a", "pad"])
    get_adv_estimator_fn("delta_l")(token_level_rewards=rewards, response_mask=mask, index=index, config=_config())
    metrics = pop_step_metrics()
    assert metrics["deltal/adv_weight/mean"] == pytest.approx(1.0)
    # w = (1/2, 1/8, 1/4) / mean(...) = (12/7, 3/7, 6/7): the padding row is not a response.
    assert metrics["deltal/adv_weight/min"] == pytest.approx(3 / 7, rel=1e-5)
    assert metrics["deltal/adv_weight/max"] == pytest.approx(12 / 7, rel=1e-5)
    assert metrics["deltal/response_length/mean"] == pytest.approx(14 / 3)
    assert metrics["deltal/truncated_fraction"] == pytest.approx(1 / 3)
    assert metrics["deltal/alpha"] == 1.0
    assert pop_step_metrics() == {}


@pytest.mark.parametrize("alpha", [-0.5, float("inf")])
def test_invalid_alpha_is_refused_with_the_fix(alpha):
    rewards, mask, index = _batch([2, 3], [1.0, 0.0], ["a", "a"])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        get_adv_estimator_fn("delta_l")(
            token_level_rewards=rewards, response_mask=mask, index=index, config=_config(alpha=alpha)
        )


def test_overlong_filtering_without_a_max_length_names_the_fix():
    rewards, mask, index = _batch([2, 3], [1.0, 0.0], ["a", "a"])
    config = _config(filter_overlong=True)
    config.deltal.max_response_length = None
    with pytest.raises(ValueError, match="max_response_length"):
        get_adv_estimator_fn("deltal_grpo")(token_level_rewards=rewards, response_mask=mask, index=index, config=config)
