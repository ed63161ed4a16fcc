"""Train with verl and deltal: ``python -m deltal.train method=delta_l <verl hydra overrides>``.

Composes verl 0.9.1's own ``ppo_trainer`` config with deltal's keys (``deltal/config/deltal_trainer.yaml``),
derives and validates the method's settings in one place (``deltal.verl_adapter.config``), checks that verl
loaded deltal's plugin, runs the preflight checks (data, model, math server), and hands over to verl's v1
trainer through Ray, with deltal's TaskRunner so the per-step ΔL metrics are logged.

    DRY_RUN=1 python -m deltal.train method=delta_l data.max_response_length=3072   # print the resolved config

With ``DRY_RUN=1`` it prints the resolved, validated config as YAML and exits 0 without starting Ray or
touching data, model or servers. Invalid settings (an unknown ``method=`` included) exit with status 2 and a
message naming the fix. Every launch prints one line to stderr with the method, α, M and the verl settings derived
from them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import NoReturn

import hydra
from omegaconf import DictConfig, OmegaConf

EXIT_INVALID_CONFIG = 2


def method_overrides(overrides: list[str]) -> list[str]:
    """The values of ``method=`` / ``+method=`` among hydra overrides."""
    return [o.split("=", 1)[1] for o in overrides if "=" in o and o.split("=", 1)[0].lstrip("+") == "method"]


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose deltal's trainer config with hydra overrides, without resolving deltal's settings."""
    from hydra import compose, initialize_config_module

    from deltal.verl_adapter.config import check_method_name

    # Checked before hydra, which would only say that the config group has no such option.
    for name in method_overrides(overrides):
        check_method_name(name)
    with initialize_config_module(config_module="deltal.config", version_base=None):
        return compose(config_name="deltal_trainer", overrides=list(overrides))


def validate_config(cfg: DictConfig) -> DictConfig:
    """Resolve deltal's settings and run verl's own config validation; raise ConfigError for a bad configuration."""
    from hydra.errors import InstantiationException
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass
    from verl.utils.config import validate_config as verl_validate_config

    from deltal.verl_adapter.config import ConfigError, resolve_config
    from deltal.verl_adapter.registration import assert_registered

    resolve_config(cfg)
    try:
        assert_registered()
    except RuntimeError as exc:
        raise ConfigError(str(exc)) from exc
    # verl's checks report a bad setting with these exception types; only their calls are wrapped, so a bug in
    # deltal's own code still surfaces with its traceback.
    try:
        verl_validate_config(config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
        # The workers turn the actor section into verl's dataclass; doing it here surfaces bad keys before Ray starts.
        omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    except (InstantiationException, ValueError, TypeError, AssertionError) as exc:
        raise ConfigError(f"verl rejected the configuration: {exc}") from exc
    return cfg


def _invalid(exc: Exception) -> NoReturn:
    print(f"deltal: invalid configuration: {exc}", file=sys.stderr)
    sys.exit(EXIT_INVALID_CONFIG)


def run(cfg: DictConfig) -> None:
    """Validate ``cfg`` and train (or print it, with DRY_RUN=1)."""
    from deltal.verl_adapter.config import ConfigError, launch_summary

    try:
        # verl's validator prints progress to stdout; keep stdout for the YAML so a dry run can be piped.
        with contextlib.redirect_stdout(sys.stderr):
            validate_config(cfg)
    except ConfigError as exc:
        _invalid(exc)
    print(launch_summary(cfg), file=sys.stderr, flush=True)

    if os.environ.get("DRY_RUN", "0") not in ("", "0", "false", "False"):
        print(OmegaConf.to_yaml(cfg, resolve=True))
        return

    from verl.trainer.main_ppo import run_ppo
    from verl.utils.device import auto_set_device

    from deltal.train.preflight import PreflightError, run_preflight
    from deltal.train.run_logging import configure_loggers
    from deltal.verl_adapter.trainer import DeltaLTaskRunner

    try:
        run_preflight(cfg)
    except PreflightError as exc:
        print(f"deltal: preflight failed: {exc}", file=sys.stderr)
        sys.exit(EXIT_INVALID_CONFIG)
    configure_loggers(cfg)
    auto_set_device(cfg)
    run_ppo(cfg, task_runner_class=DeltaLTaskRunner)


@hydra.main(config_path="pkg://deltal.config", config_name="deltal_trainer", version_base=None)
def _hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    """Command line: hydra overrides in ``sys.argv``; an unknown ``method=`` exits 2 with the list of methods."""
    from deltal.verl_adapter.config import ConfigError, check_method_name

    try:
        for name in method_overrides(sys.argv[1:]):
            check_method_name(name)
    except ConfigError as exc:
        _invalid(exc)
    _hydra_main()
