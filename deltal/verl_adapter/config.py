"""Resolve and validate deltal's settings: the one place where everything derived from the method is set.

Users choose a method with the names they know from the reference scripts, either a preset
(``method=delta_l`` ...) or the switches themselves: ``algorithm.use_grpopp`` with
``algorithm.grpopp_config.alpha``, ``algorithm.use_dr_grpo``, or (for the three baselines)
``actor_rollout_ref.actor.loss_agg_mode``. From that, :func:`resolve_config` fills in the keys that deltal's
config leaves as ``auto``: ``algorithm.adv_estimator``, ``algorithm.norm_adv_by_std_in_grpo``,
``actor_rollout_ref.actor.loss_agg_mode`` and ``actor_rollout_ref.actor.loss_scale_factor``, and writes the
``algorithm.deltal.*`` keys the estimators read (method, α, M, and ΔL's ``scope`` / ``exclude_zero_advantage``
from ``algorithm.grpopp_config``). A value
set by hand that contradicts the method stops the run with a :class:`ConfigError` that names the fix.
"""

from __future__ import annotations

import logging
import math

from omegaconf import DictConfig, open_dict

from deltal.algorithm.groups import SCOPES
from deltal.verl_adapter.methods import METHOD_BY_LOSS_AGG_MODE, METHODS, MethodSpec

logger = logging.getLogger(__name__)

AUTO = "auto"
# deltal's subclass of verl's sync trainer (logs the estimator's per-step metrics); see verl_adapter.trainer.
DELTAL_SYNC_TRAINER = "deltal_sync"


class ConfigError(ValueError):
    """A deltal setting is missing or contradicts another; the message says what to change."""


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == AUTO


def infer_method(cfg: DictConfig) -> str:
    """Name of the paper method the switches select; raise ConfigError if they conflict or select none."""
    algo = cfg.algorithm
    use_grpopp, use_dr_grpo = bool(algo.use_grpopp), bool(algo.use_dr_grpo)
    if use_grpopp and use_dr_grpo:
        raise ConfigError(
            "algorithm.use_grpopp=true (ΔL) and algorithm.use_dr_grpo=true (Dr. GRPO) are both set; they are "
            "different aggregations. Keep one: method=delta_l or method=dr_grpo."
        )
    if use_grpopp:
        return "delta_l"
    if use_dr_grpo:
        return "dr_grpo"
    mode = cfg.actor_rollout_ref.actor.loss_agg_mode
    if _is_auto(mode):
        raise ConfigError(
            f"No aggregation method chosen. Add method=<name> with one of {sorted(METHODS)} "
            "(or algorithm.use_grpopp=true for ΔL, algorithm.use_dr_grpo=true for Dr. GRPO)."
        )
    if mode not in METHOD_BY_LOSS_AGG_MODE:
        raise ConfigError(
            f"actor_rollout_ref.actor.loss_agg_mode={mode!r} is not one of the paper's methods. Use method=<name> with "
            f"one of {sorted(METHODS)}, or run verl directly (python -m verl.trainer.main_ppo) for other modes."
        )
    return METHOD_BY_LOSS_AGG_MODE[mode]


def _max_response_length(cfg: DictConfig) -> int:
    value = cfg.data.get("max_response_length")
    if value is None or isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"data.max_response_length must be a positive integer (it is the constant M of the loss), got {value!r}. "
            "Set e.g. data.max_response_length=3072."
        )
    return value


def _alpha(cfg: DictConfig) -> float:
    value = cfg.algorithm.grpopp_config.get("alpha")
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"algorithm.grpopp_config.alpha must be a number, got {value!r}.") from None
    if not math.isfinite(alpha) or alpha < 0:
        raise ConfigError(
            f"algorithm.grpopp_config.alpha={value!r} is invalid: ΔL needs a finite α >= 0 "
            "(1 = minimum variance, 0 = Dr. GRPO Norm; the paper uses 1 for CountDown, 0.75 for Math)."
        )
    return alpha


def _delta_l_options(cfg: DictConfig, method: str) -> tuple[str, bool]:
    """``grpopp_config.scope`` and ``.exclude_zero_advantage``, validated; only ΔL may leave the defaults."""
    options = cfg.algorithm.grpopp_config
    scope, exclude = options.get("scope", "batch"), options.get("exclude_zero_advantage", False)
    if scope not in SCOPES:
        raise ConfigError(
            f"algorithm.grpopp_config.scope={scope!r} is not one of {'|'.join(SCOPES)}: batch normalises the ΔL "
            "weights over the whole batch (the paper), group within each prompt's responses."
        )
    if not isinstance(exclude, bool):
        raise ConfigError(f"algorithm.grpopp_config.exclude_zero_advantage must be true or false, got {exclude!r}.")
    if method != "delta_l" and (scope != "batch" or exclude):
        raise ConfigError(
            f"algorithm.grpopp_config.scope={scope} / exclude_zero_advantage={exclude} change how the ΔL weights are "
            f"normalised, but method {method} has no ΔL weights. Use method=delta_l, or drop those overrides."
        )
    return scope, exclude


def _derive(cfg_node: DictConfig, key: str, wanted, method: str, path: str, fix: str) -> None:
    """Set ``cfg_node[key]`` to ``wanted`` if it is ``auto``; raise if a hand-set value differs."""
    current = cfg_node[key]
    if _is_auto(current):
        cfg_node[key] = wanted
    elif current != wanted:
        raise ConfigError(f"{path}={current!r} contradicts method {method}, which needs {wanted!r}. {fix}")


def resolve_config(cfg: DictConfig) -> DictConfig:
    """Fill in deltal's derived settings in place, validate them, and return ``cfg``."""
    method = infer_method(cfg)
    spec: MethodSpec = METHODS[method]
    max_len = _max_response_length(cfg)
    algo, actor = cfg.algorithm, cfg.actor_rollout_ref.actor
    alpha = _alpha(cfg) if method == "delta_l" else None
    scope, exclude_zero_advantage = _delta_l_options(cfg, method)
    drop = "Remove the override (deltal derives it from the method) or choose another method."

    with open_dict(cfg):
        _derive(algo, "adv_estimator", spec.estimator, method, "algorithm.adv_estimator", drop)
        _derive(actor, "loss_agg_mode", spec.loss_agg_mode, method, "actor_rollout_ref.actor.loss_agg_mode", drop)
        scale = max_len if spec.constant_denominator else None
        _derive(actor, "loss_scale_factor", scale, method, "actor_rollout_ref.actor.loss_scale_factor", drop)
        if method == "dr_grpo":
            _derive(algo, "norm_adv_by_std_in_grpo", False, method, "algorithm.norm_adv_by_std_in_grpo", drop)
        elif _is_auto(algo.norm_adv_by_std_in_grpo):
            algo.norm_adv_by_std_in_grpo = spec.norm_adv_by_std
        elif not isinstance(algo.norm_adv_by_std_in_grpo, bool):
            raise ConfigError(
                f"algorithm.norm_adv_by_std_in_grpo must be true, false or auto, got {algo.norm_adv_by_std_in_grpo!r}."
            )
        if not isinstance(algo.filter_overlong_response.enable, bool):
            raise ConfigError("algorithm.filter_overlong_response.enable must be true or false.")

        if cfg.trainer.v1.trainer_mode == "sync":
            cfg.trainer.v1.trainer_mode = DELTAL_SYNC_TRAINER
        elif cfg.trainer.v1.trainer_mode != DELTAL_SYNC_TRAINER:
            logger.warning(
                "trainer.v1.trainer_mode=%s: deltal's per-step metrics (deltal/*) are only logged by the sync trainer.",
                cfg.trainer.v1.trainer_mode,
            )
        algo.deltal.method = method
        algo.deltal.alpha = alpha
        algo.deltal.max_response_length = max_len
        algo.deltal.scope = scope
        algo.deltal.exclude_zero_advantage = exclude_zero_advantage
    return cfg
