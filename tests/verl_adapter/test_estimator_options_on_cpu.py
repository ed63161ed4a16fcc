"""The estimator's options beyond the paper, on hand-computed batches: group scope normalises the ΔL weights within
each prompt's group, zero-advantage exclusion leaves constant-reward groups out of the normaliser (their advantage
stays 0, only the others' weights change), and each step's metrics carry the variance/bias telemetry of the running
method and of the paper's baselines on the same lengths (ΔL at α = 1 has CV ratio exactly 1)."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.core_algos import get_adv_estimator_fn

from deltal.verl_adapter.estimator import pop_step_metrics

MAX_LEN = 16


def _config(alpha=1.0, scope="batch", exclude=False, method="delta_l"):
    return OmegaConf.create(
        {
            "norm_adv_by_std_in_grpo": True,
            "filter_overlong_response": {"enable": False},
            "grpopp_config": {"alpha": alpha},
            "deltal": {
                "method": method,
                "alpha": alpha,
                "max_response_length": MAX_LEN,
                "scope": scope,
                "exclude_zero_advantage": exclude,
            },
        }
    )


def _batch(lengths, scores, uids):
    mask = torch.zeros(len(lengths), MAX_LEN)
    rewards = torch.zeros(len(lengths), MAX_LEN)
    for i, (length, score) in enumerate(zip(lengths, scores, strict=True)):
        mask[i, :length] = 1
        if length:
            rewards[i, length - 1] = score
    return rewards, mask, np.array(uids, dtype=object)


def _weights(batch, config, estimator="delta_l"):
    """The per-response factor the estimator applied on top of verl's GRPO advantage (0 where that is 0)."""
    rewards, mask, index = batch
    grpo, _ = get_adv_estimator_fn("grpo")(token_level_rewards=rewards, response_mask=mask, index=index)
    advantages, _ = get_adv_estimator_fn(estimator)(
        token_level_rewards=rewards, response_mask=mask, index=index, config=config
    )
    grpo, advantages = grpo[:, 0], advantages[:, 0]
    return torch.where(grpo != 0, advantages / torch.where(grpo != 0, grpo, 1.0), 0.0), advantages


def test_group_scope_normalises_the_weights_within_each_prompt():
    # group a: 1/L = [1/2, 1/4] -> [4/3, 2/3]; group b: 1/L = [1/3, 1/9] -> [3/2, 1/2]
    batch = _batch([2, 4, 3, 9], [1.0, 0.0, 0.0, 1.0], ["a", "a", "b", "b"])
    weights, _ = _weights(batch, _config(scope="group"))
    torch.testing.assert_close(weights, torch.tensor([4 / 3, 2 / 3, 3 / 2, 1 / 2]))
    batch_weights, _ = _weights(batch, _config())
    inverse = torch.tensor([1 / 2, 1 / 4, 1 / 3, 1 / 9])
    torch.testing.assert_close(batch_weights, inverse / inverse.mean())


def test_zero_advantage_groups_leave_the_normaliser_and_keep_advantage_zero():
    # group b's rewards are all 1: without exclusion 1/L = [1/2, 1/4, 1/8, 1/8], mean 1/4 -> w = [2, 1, 1/2, 1/2];
    # with it the normaliser is group a alone: w = [4/3, 2/3] and group b stays at advantage 0.
    batch = _batch([2, 4, 8, 8], [1.0, 0.0, 1.0, 1.0], ["a", "a", "b", "b"])
    kept, kept_adv = _weights(batch, _config())
    excluded, excluded_adv = _weights(batch, _config(exclude=True))
    torch.testing.assert_close(kept[:2], torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(excluded[:2], torch.tensor([4 / 3, 2 / 3]))
    assert excluded_adv[2:].tolist() == [0.0, 0.0] and kept_adv[2:].tolist() == [0.0, 0.0]
    metrics = pop_step_metrics()
    assert metrics["deltal/zero_advantage_excluded_fraction"] == pytest.approx(0.5)
    assert metrics["deltal/adv_weight/mean"] == pytest.approx(1.0)  # over the rows in the normaliser


def test_group_scope_with_exclusion_zeroes_the_constant_group_only():
    batch = _batch([2, 4, 3, 9, 5, 5], [1.0, 0.0, 0.0, 1.0, 1.0, 1.0], ["a", "a", "b", "b", "c", "c"])
    weights, advantages = _weights(batch, _config(scope="group", exclude=True))
    torch.testing.assert_close(weights[:4], torch.tensor([4 / 3, 2 / 3, 3 / 2, 1 / 2]))
    assert advantages[4:].tolist() == [0.0, 0.0]


def test_a_singleton_group_is_not_a_zero_advantage_group():
    # verl gives a one-response group advantage r (mean 0, std 1), so it carries gradient and stays in
    batch = _batch([2, 4, 8], [1.0, 0.0, 1.0], ["a", "a", "solo"])
    weights, _ = _weights(batch, _config(exclude=True))
    inverse = torch.tensor([1 / 2, 1 / 4, 1 / 8])
    torch.testing.assert_close(weights, inverse / inverse.mean())


def test_metrics_carry_the_telemetry_and_delta_l_at_alpha_one_is_optimal():
    batch = _batch([1, 4, 2, 9], [1.0, 0.0, 0.0, 1.0], ["a", "a", "b", "b"])
    _weights(batch, _config(alpha=1.0))
    metrics = pop_step_metrics()
    assert metrics["deltal/variance/cv_ratio_to_optimal"] == 1.0
    assert metrics["deltal/bias/scale_ratio"] == pytest.approx(1.0)
    assert metrics["deltal/variance/cv_ratio/dr_grpo_norm"] > 1.0
    assert set(metrics) >= {f"deltal/bias/scale_ratio/{name}" for name in ("grpo_norm", "dapo_norm", "dr_grpo_norm")}


def test_a_baseline_run_reports_its_own_cost_by_hand():
    # DAPO Norm on L = [1, 4] (M = 16): CV ratio sqrt(5)/2 · sqrt(1.25) = 1.25, scale M·G/ΣL = 16·2/5 = 6.4
    batch = _batch([1, 4], [1.0, 0.0], ["a", "a"])
    _weights(batch, _config(method="dapo_norm"), estimator="deltal_grpo")
    metrics = pop_step_metrics()
    assert metrics["deltal/variance/cv_ratio_to_optimal"] == pytest.approx(1.25)
    assert metrics["deltal/bias/scale_ratio"] == pytest.approx(6.4)
    assert metrics["deltal/variance/cv_ratio/dapo_norm"] == metrics["deltal/variance/cv_ratio_to_optimal"]


def test_group_scope_telemetry_stays_unbiased_and_costs_variance():
    batch = _batch([1, 2, 8, 16], [1.0, 0.0, 0.0, 1.0], ["a", "a", "b", "b"])
    _weights(batch, _config(scope="group"))
    metrics = pop_step_metrics()
    assert metrics["deltal/bias/scale_ratio"] == pytest.approx(1.0)
    assert metrics["deltal/variance/cv_ratio_to_optimal"] > 1.0
