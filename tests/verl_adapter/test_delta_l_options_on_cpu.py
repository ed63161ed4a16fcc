"""ΔL's options beyond the paper (``algorithm.grpopp_config.scope`` and ``.exclude_zero_advantage``) resolve in the
one config resolver into ``algorithm.deltal.*``: the defaults are the paper's (batch scope, no exclusion), bad values
and options on methods without ΔL weights stop with the fix, and a DRY_RUN of the entry point's run() shows them."""

import pytest
import yaml

from deltal.train import compose_config, run
from deltal.verl_adapter.config import ConfigError, launch_summary, resolve_config

BASE = ["data.max_response_length=1024"]


def _resolved(*overrides: str):
    return resolve_config(compose_config([*BASE, *overrides])).algorithm.deltal


def test_defaults_are_the_paper_batch_scope_without_exclusion():
    deltal = _resolved("method=delta_l")
    assert (deltal.scope, deltal.exclude_zero_advantage) == ("batch", False)
    assert _resolved("method=dapo_norm").scope == "batch"


def test_options_resolve_into_the_keys_the_estimator_reads_and_show_in_the_launch_line():
    cfg = resolve_config(
        compose_config(
            [
                *BASE,
                "method=delta_l",
                "algorithm.grpopp_config.scope=group",
                "algorithm.grpopp_config.exclude_zero_advantage=true",
            ]
        )
    )
    assert (cfg.algorithm.deltal.scope, cfg.algorithm.deltal.exclude_zero_advantage) == ("group", True)
    assert "scope=group exclude_zero_advantage=True" in launch_summary(cfg)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["method=delta_l", "algorithm.grpopp_config.scope=prompt"], "is not one of batch|group"),
        (["method=delta_l", "algorithm.grpopp_config.exclude_zero_advantage=yes"], "must be true or false"),
        (["method=dapo_norm", "algorithm.grpopp_config.scope=group"], "has no ΔL weights. Use method=delta_l"),
        (["method=dr_grpo", "algorithm.grpopp_config.exclude_zero_advantage=true"], "has no ΔL weights"),
    ],
)
def test_bad_values_stop_with_the_fix(overrides, words):
    with pytest.raises(ConfigError, match=words):
        _resolved(*overrides)


def test_dry_run_shows_the_options(monkeypatch, capsys):
    # the entry point's own run(): with DRY_RUN=1 it validates and prints the resolved config as YAML
    monkeypatch.setenv("DRY_RUN", "1")
    run(
        compose_config(
            [
                *BASE,
                "method=delta_l",
                "algorithm.grpopp_config.scope=group",
                "algorithm.grpopp_config.exclude_zero_advantage=true",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
            ]
        )
    )
    algorithm = yaml.safe_load(capsys.readouterr().out)["algorithm"]
    assert algorithm["grpopp_config"] == {"alpha": 1.0, "scope": "group", "exclude_zero_advantage": True}
    assert (algorithm["deltal"]["scope"], algorithm["deltal"]["exclude_zero_advantage"]) == ("group", True)
