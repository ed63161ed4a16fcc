"""`python -m deltal.train` with DRY_RUN=1 prints the resolved, validated config and exits 0 without Ray;
invalid settings exit 2 with the message. Runs the real entry point in a subprocess, as a user would."""

import os
import subprocess
import sys

import pytest
import yaml

VALID = [
    "method=delta_l",
    "algorithm.grpopp_config.alpha=0.75",
    "data.max_response_length=3072",
    "actor_rollout_ref.rollout.name=vllm",
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4",
    # Paths that do not exist: a dry run must not touch data or model.
    "data.train_files=/nonexistent/train.parquet",
    "actor_rollout_ref.model.path=/nonexistent/model",
]


def _train(overrides, tmp_path):
    env = {**os.environ, "DRY_RUN": "1"}
    return subprocess.run(
        [sys.executable, "-m", "deltal.train", *overrides, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )


@pytest.fixture(scope="module")
def valid_dry_run(tmp_path_factory):
    """One dry run of VALID; the tests below check different things of its output."""
    return _train(VALID, tmp_path_factory.mktemp("dry_run"))


def test_dry_run_prints_the_resolved_config_and_starts_nothing(valid_dry_run):
    result = valid_dry_run
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = yaml.safe_load(result.stdout)
    assert cfg["algorithm"]["adv_estimator"] == "delta_l"
    assert cfg["algorithm"]["deltal"] == {
        "method": "delta_l",
        "alpha": 0.75,
        "max_response_length": 3072,
        "scope": "batch",
        "exclude_zero_advantage": False,
    }
    assert cfg["actor_rollout_ref"]["actor"]["loss_agg_mode"] == "seq-mean-token-sum-norm"
    assert cfg["actor_rollout_ref"]["actor"]["loss_scale_factor"] == 3072
    assert "ray init kwargs" not in result.stdout + result.stderr  # printed by verl just before ray.init


def test_invalid_settings_exit_2_with_the_fix(tmp_path):
    result = _train(VALID + ["algorithm.use_dr_grpo=true"], tmp_path)
    assert result.returncode == 2
    assert "deltal: invalid configuration" in result.stderr
    assert "method=delta_l or method=dr_grpo" in result.stderr


def test_an_unknown_method_exits_2_with_the_list_of_methods(tmp_path):
    result = _train(["method=deltal"] + VALID[1:], tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "unknown method 'deltal'" in result.stderr
    assert "'delta_l'" in result.stderr and "'grpo_norm'" in result.stderr


def test_every_launch_prints_method_alpha_and_m_in_one_line(valid_dry_run):
    result = valid_dry_run
    lines = [line for line in result.stderr.splitlines() if line.startswith("deltal: method=")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "method=delta_l" in lines[0] and "alpha=0.75" in lines[0] and "M=3072" in lines[0]
