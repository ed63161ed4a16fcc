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
from typing import Any

from omegaconf import DictConfig, open_dict

from deltal.algorithm.groups import SCOPES
from deltal.algorithm.validation import check_alpha
from deltal.verl_adapter.methods import METHOD_BY_LOSS_AGG_MODE, METHODS, MethodSpec

logger = logging.getLogger(__name__)

AUTO = "auto"
# deltal's subclass of verl's sync trainer (logs the estimator's per-step metrics); see verl_adapter.trainer.
DELTAL_SYNC_TRAINER = "deltal_sync"


class ConfigError(ValueError):
    """A deltal setting is missing or contradicts another; the message says what to change."""


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == AUTO


def strict_bool(value: Any, path: str) -> bool:
    """``value`` if it is a real boolean; raise ConfigError otherwise.

    Hydra hands ``off``, ``no`` or a quoted ``'false'`` over as strings, and ``bool("false")`` is True: a switch
    read with ``bool()`` would turn on when the user meant off.
    """
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{path} must be true or false, got {value!r}. Write {path}=true or {path}=false (unquoted).")


def infer_method(cfg: DictConfig) -> str:
    """Name of the paper method the switches select; raise ConfigError if they conflict or select none."""
    algo = cfg.algorithm
    use_grpopp = strict_bool(algo.use_grpopp, "algorithm.use_grpopp")
    use_dr_grpo = strict_bool(algo.use_dr_grpo, "algorithm.use_dr_grpo")
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


def check_method_name(name: str) -> None:
    """Raise ConfigError naming the methods unless ``name`` (the value of ``method=``) is one of them."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}. Use method=<name> with one of {sorted(METHODS)}.")


def _checked_max_response_length(cfg: DictConfig) -> int:
    """M = data.max_response_length; deltal's config leaves it null, so a run that does not set it stops here."""
    fix = "Set e.g. data.max_response_length=3072 (the generation limit in tokens, and the constant M of the loss)."
    value = cfg.data.get("max_response_length")
    if value is None:
        raise ConfigError(
            "data.max_response_length is not set; deltal does not fall back to verl's default of 512. "
            f"data.max_response_length must be a positive integer. {fix}"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"data.max_response_length must be a positive integer (it is the constant M of the loss), got {value!r}. "
            + fix
        )
    return value


def _checked_alpha(cfg: DictConfig) -> float:
    """α = algorithm.grpopp_config.alpha: a real number (not a boolean, not a quoted string), checked by the core."""
    value = cfg.algorithm.grpopp_config.get("alpha")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"algorithm.grpopp_config.alpha must be a number, got {value!r}. "
            "Write e.g. algorithm.grpopp_config.alpha=1.0 (unquoted)."
        )
    try:
        return check_alpha(value)
    except ValueError as exc:
        raise ConfigError(
            f"algorithm.grpopp_config.alpha={value!r} is invalid: ΔL needs a finite α >= 0 ({exc}). The paper uses 1 "
            "for CountDown and 0.75 for Math."
        ) from None


def _checked_delta_l_options(cfg: DictConfig, method: str) -> tuple[str, bool]:
    """``grpopp_config.scope`` and ``.exclude_zero_advantage``, validated; only a reweighting method may leave the
    paper's defaults (batch, false)."""
    options = cfg.algorithm.grpopp_config
    scope = options.get("scope", "batch")
    exclude_path = "algorithm.grpopp_config.exclude_zero_advantage"
    exclude = strict_bool(options.get("exclude_zero_advantage", False), exclude_path)
    if scope not in SCOPES:
        raise ConfigError(
            f"algorithm.grpopp_config.scope={scope!r} is not one of {'|'.join(SCOPES)}: batch normalises the ΔL "
            "weights over the whole batch (the paper), group within each prompt's responses."
        )
    if not METHODS[method].reweights and (scope != "batch" or exclude):
        raise ConfigError(
            f"algorithm.grpopp_config.scope={scope} / exclude_zero_advantage={exclude} change how the ΔL weights are "
            f"normalised, but method {method} has no ΔL weights. Use method=delta_l, or drop those overrides."
        )
    return scope, exclude


def derived_deltal_settings(cfg: DictConfig, method: str) -> dict[str, Any]:
    """The ``algorithm.deltal.*`` keys that deltal's estimators read, derived from the user's settings.

    This is the only reader of ``algorithm.grpopp_config.*``: a new ΔL option is read and checked here and
    written as one more ``algorithm.deltal`` key (declare it under ``deltal:`` in ``deltal_trainer.yaml``).
    """
    scope, exclude_zero_advantage = _checked_delta_l_options(cfg, method)
    return {
        "method": method,
        "alpha": _checked_alpha(cfg) if METHODS[method].reweights else None,
        "max_response_length": _checked_max_response_length(cfg),
        "scope": scope,
        "exclude_zero_advantage": exclude_zero_advantage,
    }


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
    derived = derived_deltal_settings(cfg, method)
    algo, actor = cfg.algorithm, cfg.actor_rollout_ref.actor
    drop = "Remove the override (deltal derives it from the method) or choose another method."

    with open_dict(cfg):
        _derive(algo, "adv_estimator", spec.estimator, method, "algorithm.adv_estimator", drop)
        _derive(actor, "loss_agg_mode", spec.loss_agg_mode, method, "actor_rollout_ref.actor.loss_agg_mode", drop)
        scale = derived["max_response_length"] if spec.constant_denominator else None
        _derive(actor, "loss_scale_factor", scale, method, "actor_rollout_ref.actor.loss_scale_factor", drop)
        if not spec.norm_adv_by_std:
            _derive(algo, "norm_adv_by_std_in_grpo", False, method, "algorithm.norm_adv_by_std_in_grpo", drop)
        elif _is_auto(algo.norm_adv_by_std_in_grpo):
            algo.norm_adv_by_std_in_grpo = spec.norm_adv_by_std
        elif not isinstance(algo.norm_adv_by_std_in_grpo, bool):
            raise ConfigError(
                f"algorithm.norm_adv_by_std_in_grpo must be true, false or auto, got {algo.norm_adv_by_std_in_grpo!r}."
            )
        strict_bool(algo.filter_overlong_response.enable, "algorithm.filter_overlong_response.enable")

        if cfg.trainer.v1.trainer_mode == "sync":
            cfg.trainer.v1.trainer_mode = DELTAL_SYNC_TRAINER
        elif cfg.trainer.v1.trainer_mode != DELTAL_SYNC_TRAINER:
            logger.warning(
                "trainer.v1.trainer_mode=%s: deltal's per-step metrics (deltal/*) are only logged by the sync trainer.",
                cfg.trainer.v1.trainer_mode,
            )
        for key, value in derived.items():
            algo.deltal[key] = value
    return cfg


def launch_summary(cfg: DictConfig) -> str:
    """One line with what a resolved config will train: method, α (and ΔL's options), M and the verl settings."""
    derived, actor = cfg.algorithm.deltal, cfg.actor_rollout_ref.actor
    alpha = "-" if derived.alpha is None else f"{derived.alpha:g}"
    options = ""
    if METHODS[derived.method].reweights:
        options = f" scope={derived.scope} exclude_zero_advantage={derived.exclude_zero_advantage}"
    return (
        f"deltal: method={derived.method} ({METHODS[derived.method].label}) alpha={alpha}{options} "
        f"M={derived.max_response_length} adv_estimator={cfg.algorithm.adv_estimator} "
        f"loss_agg_mode={actor.loss_agg_mode} loss_scale_factor={actor.loss_scale_factor} "
        f"norm_adv_by_std={cfg.algorithm.norm_adv_by_std_in_grpo}"
    )
