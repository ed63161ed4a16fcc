"""Bad ΔL settings stop at ``DeltaLGRPOConfig(...)`` (or at ``DeltaLGRPOTrainer(...)`` when a field was changed after
the config was built, or a plain ``GRPOConfig`` is passed) with a ValueError that names the field and the fix; the
defaults are the paper's (α = 1, batch scope) on TRL's ``dr_grpo`` loss; another TRL version is refused at once."""

import pytest
import trl
from conftest import cpu_config, load_model, make_trainer
from trl import GRPOConfig

from deltal.trl import DeltaLConfigError, DeltaLGRPOConfig
from deltal.trl.trainer import check_trl_version


def no_reward(completions, **kwargs):
    return [0.0] * len(completions)


def test_defaults_are_the_papers_delta_l_on_the_constant_denominator(tmp_path):
    config = DeltaLGRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    assert (config.loss_type, config.delta_l_alpha, config.delta_l_scope) == ("dr_grpo", 1.0, "batch")
    assert config.delta_l_exclude_zero_advantage is False
    assert isinstance(DeltaLGRPOConfig(output_dir=str(tmp_path), bf16=False, delta_l_alpha=1).delta_l_alpha, float)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"delta_l_alpha": -0.5}, "delta_l_alpha=-0.5 is invalid: ΔL needs a finite α >= 0"),
        ({"delta_l_alpha": float("nan")}, "delta_l_alpha=nan is invalid"),
        ({"delta_l_alpha": "1.0"}, "delta_l_alpha must be a number such as 1.0 or 0.75, got '1.0'"),
        ({"delta_l_alpha": True}, "delta_l_alpha must be a number"),
        ({"delta_l_scope": "prompt"}, "delta_l_scope='prompt' is not one of batch|group"),
        ({"delta_l_exclude_zero_advantage": "yes"}, "delta_l_exclude_zero_advantage must be True or False"),
        ({"loss_type": "dapo"}, "ΔL needs loss_type='dr_grpo'.*Remove the loss_type argument"),
        ({"loss_type": "grpo"}, "undoes the ΔL weights"),
        ({"max_completion_length": None}, "max_completion_length must be a positive integer.*max_completion_length="),
        (
            {"delta_l_exclude_zero_advantage": True, "multi_objective_aggregation": "normalize_then_sum"},
            "needs multi_objective_aggregation='sum_then_normalize'",
        ),
        ({"use_liger_kernel": True}, "use_liger_kernel=True: .*Set use_liger_kernel=False"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_fix(tmp_path, fields, message):
    with pytest.raises(DeltaLConfigError, match=message):
        DeltaLGRPOConfig(output_dir=str(tmp_path), bf16=False, **fields)


def test_the_trainer_refuses_a_plain_grpo_config(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    plain = GRPOConfig(output_dir=str(tmp_path), bf16=False, use_cpu=True, loss_type="dr_grpo")
    with pytest.raises(DeltaLConfigError, match=r"needs args=DeltaLGRPOConfig\(...\), got GRPOConfig"):
        make_trainer(model, tokenizer, plain, reward=no_reward)


def test_the_trainer_checks_fields_changed_after_the_config_was_built(tiny_model_dir, tmp_path):
    model, tokenizer = load_model(tiny_model_dir)
    config = cpu_config(tmp_path)
    config.loss_type = "bnpo"
    with pytest.raises(DeltaLConfigError, match="loss_type='bnpo'"):
        make_trainer(model, tokenizer, config, reward=no_reward)


def test_another_trl_version_is_refused_with_the_install_command(monkeypatch):
    check_trl_version()  # the installed one is the pinned one
    monkeypatch.setattr(trl, "__version__", "1.16.0")
    with pytest.raises(RuntimeError, match=r"built for trl==1.12.0 .* trl==1.16.0 is installed.*pip install"):
        check_trl_version()
