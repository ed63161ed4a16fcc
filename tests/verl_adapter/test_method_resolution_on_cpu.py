"""Every method name and every conflicting setting resolves or fails exactly as documented in deltal.verl_adapter.

The table below is the contract of ``deltal.verl_adapter.config.resolve_config``: for each set of overrides,
the verl settings it derives, or the words its error must contain.
"""

import pytest

from deltal.train import compose_config
from deltal.verl_adapter.config import ConfigError, launch_summary, resolve_config

M = 3072
BASE = [f"data.max_response_length={M}"]

# overrides -> (adv_estimator, loss_agg_mode, loss_scale_factor, norm_adv_by_std_in_grpo, method, alpha)
RESOLVES = [
    (["method=grpo_norm"], ("deltal_grpo", "seq-mean-token-mean", None, True, "grpo_norm", None)),
    (["method=dapo_norm"], ("deltal_grpo", "token-mean", None, True, "dapo_norm", None)),
    (["method=dr_grpo_norm"], ("deltal_grpo", "seq-mean-token-sum-norm", M, True, "dr_grpo_norm", None)),
    (["method=dr_grpo"], ("deltal_grpo", "seq-mean-token-sum-norm", M, False, "dr_grpo", None)),
    (["method=delta_l"], ("delta_l", "seq-mean-token-sum-norm", M, True, "delta_l", 1.0)),
    (
        ["method=delta_l", "algorithm.grpopp_config.alpha=0.75"],
        ("delta_l", "seq-mean-token-sum-norm", M, True, "delta_l", 0.75),
    ),
    (
        ["method=delta_l", "algorithm.grpopp_config.alpha=0"],
        ("delta_l", "seq-mean-token-sum-norm", M, True, "delta_l", 0.0),
    ),
    # The reference scripts' switches work without a preset.
    (
        ["algorithm.use_grpopp=true", "algorithm.grpopp_config.alpha=0.5"],
        ("delta_l", "seq-mean-token-sum-norm", M, True, "delta_l", 0.5),
    ),
    (["algorithm.use_dr_grpo=true"], ("deltal_grpo", "seq-mean-token-sum-norm", M, False, "dr_grpo", None)),
    (
        ["actor_rollout_ref.actor.loss_agg_mode=token-mean"],
        ("deltal_grpo", "token-mean", None, True, "dapo_norm", None),
    ),
    # Values set by hand that agree with the method are accepted.
    (
        ["method=delta_l", f"actor_rollout_ref.actor.loss_scale_factor={M}", "algorithm.adv_estimator=delta_l"],
        ("delta_l", "seq-mean-token-sum-norm", M, True, "delta_l", 1.0),
    ),
    (
        ["method=dr_grpo", "algorithm.norm_adv_by_std_in_grpo=false"],
        ("deltal_grpo", "seq-mean-token-sum-norm", M, False, "dr_grpo", None),
    ),
]

# overrides -> words the ConfigError must contain
FAILS = [
    (["method=delta_l", "algorithm.use_dr_grpo=true"], "both set"),
    ([], "No aggregation method chosen"),
    (["method=delta_l", "actor_rollout_ref.actor.loss_agg_mode=token-mean"], "contradicts method delta_l"),
    (["method=delta_l", "actor_rollout_ref.actor.loss_scale_factor=1000"], "loss_scale_factor=1000 contradicts"),
    (["method=delta_l", "algorithm.adv_estimator=grpo"], "algorithm.adv_estimator='grpo' contradicts"),
    (["method=delta_l", "algorithm.grpopp_config.alpha=-1"], "finite α >= 0"),
    (["method=delta_l", "algorithm.grpopp_config.alpha=nan"], "finite α >= 0"),
    (["method=delta_l", "algorithm.grpopp_config.alpha=abc"], "must be a number"),
    (["method=delta_l", "data.max_response_length=null"], "data.max_response_length must be a positive integer"),
    (["method=delta_l", "data.max_response_length=0"], "data.max_response_length must be a positive integer"),
    (
        ["method=dr_grpo", "algorithm.norm_adv_by_std_in_grpo=true"],
        "norm_adv_by_std_in_grpo=True contradicts method dr_grpo",
    ),
    (["method=grpo_norm", f"actor_rollout_ref.actor.loss_scale_factor={M}"], "contradicts method grpo_norm"),
    (["actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum"], "not one of the paper's methods"),
    # Switches are real booleans: bool("off") and bool("false") are True, so strings must not slip through.
    (["algorithm.use_grpopp=off"], "algorithm.use_grpopp must be true or false"),
    (["algorithm.use_grpopp='false'"], "algorithm.use_grpopp must be true or false"),
    (["algorithm.use_dr_grpo='false'", "method=dapo_norm"], "algorithm.use_dr_grpo must be true or false"),
    (["method=delta_l", "algorithm.filter_overlong_response.enable=yes"], "enable must be true or false"),
    (["method=delta_l", "algorithm.grpopp_config.alpha=true"], "alpha must be a number"),
    (["method=delta_l", "algorithm.grpopp_config.alpha='0.5'"], "alpha must be a number"),
]


@pytest.mark.parametrize("overrides,expected", RESOLVES, ids=[" ".join(o) for o, _ in RESOLVES])
def test_method_settings_resolve_to_the_documented_verl_settings(overrides, expected):
    cfg = resolve_config(compose_config(BASE + overrides))
    estimator, mode, scale, norm, method, alpha = expected
    assert cfg.algorithm.adv_estimator == estimator
    assert cfg.actor_rollout_ref.actor.loss_agg_mode == mode
    assert cfg.actor_rollout_ref.actor.loss_scale_factor == scale
    assert cfg.algorithm.norm_adv_by_std_in_grpo is norm
    assert cfg.algorithm.deltal.method == method
    assert cfg.algorithm.deltal.alpha == alpha
    assert cfg.algorithm.deltal.max_response_length == M
    # The critic's copy of the aggregation follows the actor's through verl's interpolation.
    assert cfg.critic.loss_agg_mode == mode
    assert cfg.trainer.v1.trainer_mode == "deltal_sync"


@pytest.mark.parametrize("overrides,words", FAILS, ids=[" ".join(o) or "nothing" for o, _ in FAILS])
def test_conflicting_settings_stop_with_a_message_naming_the_fix(overrides, words):
    with pytest.raises(ConfigError) as excinfo:
        resolve_config(compose_config(BASE + overrides))
    assert words in str(excinfo.value)


def test_other_trainer_modes_are_kept_as_chosen():
    cfg = resolve_config(compose_config(BASE + ["method=dapo_norm", "trainer.v1.trainer_mode=colocate_async"]))
    assert cfg.trainer.v1.trainer_mode == "colocate_async"


def test_a_missing_max_response_length_stops_instead_of_taking_verls_default():
    with pytest.raises(ConfigError, match="data.max_response_length is not set"):
        resolve_config(compose_config(["method=delta_l"]))


def test_an_unknown_method_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown method 'delta'.*'delta_l'"):
        compose_config(BASE + ["method=delta"])


def test_the_launch_line_names_method_alpha_and_m():
    cfg = resolve_config(compose_config(BASE + ["method=delta_l", "algorithm.grpopp_config.alpha=0.75"]))
    line = launch_summary(cfg)
    assert "method=delta_l" in line and "alpha=0.75" in line and f"M={M}" in line
