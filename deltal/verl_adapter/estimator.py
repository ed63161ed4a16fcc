"""deltal's advantage estimators for verl: the GRPO group advantage, optional overlong filtering, and ΔL weights.

verl calls a registered estimator with ``token_level_rewards``, ``response_mask``, ``index`` (the uids that
define groups) and ``config`` (the ``algorithm`` section), once per training step on the driver, over the
whole training batch: after group filtering (dynamic sampling) and before the mini-batch split. That is
exactly where the ΔL weights w_i = L_i^-α / mean_j L_j^-α must be computed. Combined with verl's
``seq-mean-token-sum-norm`` aggregation and a constant ``loss_scale_factor`` = max response length M,
each response's token-summed gradient gets the weight x_i = (1/M)·L_i^-α / Σ_j L_j^-α of the paper.

- ``delta_l``: GRPO advantage (std-normalised unless ``norm_adv_by_std_in_grpo`` is false) × ΔL weights.
- ``deltal_grpo``: the same GRPO advantage without reweighting; the baselines (GRPO/DAPO/Dr. GRPO Norm,
  Dr. GRPO) use it so that overlong filtering and the length metrics work for every method alike.

Two options beyond the paper, resolved from ``algorithm.grpopp_config`` into ``algorithm.deltal.*`` (absent keys
mean the paper's defaults): ``scope`` (``batch``: w normalised over the batch; ``group``: within each prompt's
group) and ``exclude_zero_advantage`` (groups whose rewards are all equal are left out of the weight normaliser).

verl does not pass ``norm_adv_by_std_in_grpo`` to custom estimators, so it is read from ``config``. α, M and the
options are read only from ``algorithm.deltal.*``, which :func:`deltal.verl_adapter.config.resolve_config` derives
and checks once; the user's ``grpopp_config`` is never read here.
Per-step statistics (weights, lengths, truncation) are kept for :func:`pop_step_metrics`, which deltal's
trainer calls; the tensors are stored as they are, so the estimator itself never syncs with the host. The pop
also computes the variance/bias telemetry (``deltal.algorithm.telemetry``) from the same lengths, on the host.

Importing this module registers both estimators in verl's registry, as verl's own ``core_algos`` does for its
estimators; the plugin (``deltal.verl_adapter.plugin``) only imports it. Registering at the end of this module's own
body, rather than from the plugin, is what makes the order of imports not matter: when this module is the first to
import verl, verl runs the plugin while this module is still half-loaded, and the registration still happens once
the module has loaded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import (
    ADV_ESTIMATOR_REGISTRY,
    compute_grpo_vectorized_outcome_advantage,
    register_adv_est,
)
from verl.utils.groupwise import as_torch_index

from deltal.algorithm import delta_l_advantage_weights, filter_overlong, response_lengths
from deltal.algorithm.groups import constant_reward_rows, group_delta_l_advantage_weights
from deltal.algorithm.telemetry import batch_costs
from deltal.verl_adapter.config import ConfigError
from deltal.verl_adapter.methods import METHODS

# Last step's tensors, read (and cleared) by the trainer in the same process: {"lengths", "weights", ...}.
_pending_step_stats: dict[str, Any] = {}


def _setting(config: Any, dotted: str, default: Any = None) -> Any:
    """Read ``a.b.c`` from a DictConfig or a plain dict, returning ``default`` if any part is absent."""
    node = config
    for part in dotted.split("."):
        if node is None:
            return default
        node = node.get(part) if hasattr(node, "get") else getattr(node, part, None)
    return default if node is None else node


def _derived(config: Any, key: str) -> Any:
    """``algorithm.deltal.<key>``, written by deltal's config resolver; raise ConfigError naming the fix if absent."""
    value = _setting(config, f"deltal.{key}")
    if value is None:
        raise ConfigError(
            f"algorithm.deltal.{key} is not set: deltal's estimators read the settings that `python -m deltal.train` "
            "derives from the method (algorithm.deltal.*). Launch through `python -m deltal.train` (or `deltal train`)."
        )
    return value


def _deltal_advantage(
    token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: np.ndarray, config: Any, reweight: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    if config is None:
        raise ValueError("deltal estimators need verl's `algorithm` config; verl passes it as `config`.")
    # Both switches were checked (real booleans) by the resolver along with the algorithm.deltal keys.
    norm_by_std = _setting(config, "norm_adv_by_std_in_grpo", True)
    filter_enabled = _setting(config, "filter_overlong_response.enable", False)
    max_len = int(_derived(config, "max_response_length"))
    alpha = float(_derived(config, "alpha")) if reweight else None
    group_scope = _setting(config, "deltal.scope", "batch") == "group"
    exclude = _setting(config, "deltal.exclude_zero_advantage", False) is True

    lengths = response_lengths(response_mask)  # (bs,)
    scores = token_level_rewards.sum(dim=-1)  # (bs,) outcome rewards, the sum verl's GRPO takes itself
    group_ids = as_torch_index(index, device=scores.device)  # (bs,) 0..G-1, computed once for verl and for us
    # One advantage per response first ((bs, 1) rewards and "mask" of ones), so filtering and weighting touch bs
    # numbers and the only pass over (bs, response_len) is the final broadcast, as in verl's own vectorised GRPO.
    per_response, _ = compute_grpo_vectorized_outcome_advantage(
        token_level_rewards=scores.unsqueeze(-1),
        response_mask=torch.ones_like(lengths).unsqueeze(-1),
        index=group_ids,
        norm_adv_by_std_in_grpo=norm_by_std,
    )
    per_response = per_response.squeeze(-1)  # (bs,)
    if filter_enabled:
        per_response = filter_overlong(per_response, lengths, max_len)
    # The rows the ΔL weights are normalised over; a length of 0 is how the weight functions leave a row out.
    normaliser_lengths = lengths
    if exclude:
        normaliser_lengths = torch.where(constant_reward_rows(scores, group_ids, lengths > 0), 0.0, lengths)
    weights = None
    if alpha is not None:
        if group_scope:
            weights = group_delta_l_advantage_weights(normaliser_lengths, group_ids, alpha)  # (bs,)
        else:
            weights = delta_l_advantage_weights(normaliser_lengths, alpha)  # (bs,), 0 on rows left out
        per_response = per_response * weights
    advantages = per_response.unsqueeze(-1) * response_mask  # (bs, response_len), zero on padding tokens

    _pending_step_stats.clear()
    _pending_step_stats.update(
        lengths=lengths,
        normaliser_lengths=normaliser_lengths,
        group_ids=group_ids if group_scope else None,
        weights=weights,
        max_len=max_len,
        alpha=alpha,
        filtered=filter_enabled,
        excluded=exclude,
        method=_setting(config, "deltal.method", "delta_l" if alpha is not None else None),
    )
    return advantages, advantages


def compute_delta_l_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator ``delta_l``: GRPO advantage reweighted by w_i = L_i^-α / mean_j L_j^-α (α: algorithm.deltal)."""
    return _deltal_advantage(token_level_rewards, response_mask, index, config, reweight=True)


def compute_deltal_grpo_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    config: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl estimator ``deltal_grpo``: GRPO advantage with deltal's overlong filtering and length metrics."""
    return _deltal_advantage(token_level_rewards, response_mask, index, config, reweight=False)


# verl's estimator name (algorithm.adv_estimator) -> deltal's function; the methods name them in MethodSpec.estimator.
ESTIMATORS = {"delta_l": compute_delta_l_advantage, "deltal_grpo": compute_deltal_grpo_advantage}


def register_estimators() -> None:
    """Register every deltal estimator in verl's registry (safe to call repeatedly); refuse a foreign one's name."""
    for name, fn in ESTIMATORS.items():
        existing = ADV_ESTIMATOR_REGISTRY.get(name)
        if existing is None:
            register_adv_est(name)(fn)
        elif (existing.__module__, existing.__qualname__) != (fn.__module__, fn.__qualname__):
            owner = f"{existing.__module__}.{existing.__qualname__}"
            raise RuntimeError(
                f"verl already has an advantage estimator named {name!r} ({owner}); deltal cannot register its own."
                " Uninstall the other plugin or disable it with "
                "VERL_USE_EXTERNAL_PLUGINS=deltal."
            )


def _quantiles(values: torch.Tensor, prefix: str) -> dict[str, float]:
    values = values.double()
    qs = torch.quantile(values, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=values.device))
    # One (7,) tensor and one transfer to the host, instead of one per statistic.
    summary = torch.stack([values.mean(), values.min(), values.max(), values.std(unbiased=False), *qs]).tolist()
    names = ("mean", "min", "max", "std", "p10", "p50", "p90")
    return {f"{prefix}/{name}": value for name, value in zip(names, summary, strict=True)}


def pop_step_metrics() -> dict[str, float]:
    """Metrics of the last estimator call in this process, as verl metric names; empty if none since last pop.

    Batch-padding rows (length 0) are left out: they are not responses.
    """
    if not _pending_step_stats:
        return {}
    stats = dict(_pending_step_stats)
    _pending_step_stats.clear()
    lengths = stats["lengths"]
    valid = lengths > 0
    if not bool(valid.any()):
        return {}
    valid_lengths = lengths[valid].float()
    metrics = _quantiles(valid_lengths, "deltal/response_length")
    # Stats recorded without the options (by hand, as the trainer glue test does) mean the paper's defaults.
    stats.setdefault("normaliser_lengths", lengths)
    stats.setdefault("group_ids", None)
    stats.setdefault("method", None if stats["alpha"] is None else "delta_l")
    weighted = stats["normaliser_lengths"] > 0  # the valid rows, less those excluded from the normaliser
    weights = stats["weights"]
    if weights is None:
        weights = torch.ones_like(valid_lengths)
    else:
        weights = weights[weighted].float() if bool(weighted.any()) else torch.zeros(1)
        metrics["deltal/alpha"] = float(stats["alpha"])
    metrics.update(_quantiles(weights, "deltal/adv_weight"))
    if stats.get("excluded", False):
        metrics["deltal/zero_advantage_excluded_fraction"] = 1.0 - weighted.sum().item() / valid.sum().item()
    max_len = stats["max_len"]
    if max_len is not None:
        truncated = (valid_lengths >= max_len).double().mean().item()
        metrics["deltal/truncated_fraction"] = truncated
        if stats["filtered"]:
            metrics["deltal/overlong_filtered_fraction"] = truncated
        metrics.update(_telemetry(stats))
    return metrics


def _telemetry(stats: dict[str, Any]) -> dict[str, float]:
    """Variance/bias telemetry on the normaliser's lengths (one host copy of (bs,) tensors; see the module doc).

    ``deltal/variance/cv_ratio_to_optimal`` and ``deltal/bias/scale_ratio`` describe the running method;
    ``.../<aggregator>`` the paper's baselines on the same lengths (ΔL(α=1) itself is 1 by definition).
    """
    lengths = stats["normaliser_lengths"].detach().to("cpu", torch.float64)
    max_len = float(stats["max_len"])
    if not bool((lengths > 0).any()) or float(lengths.max()) > max_len:
        return {}  # nothing to aggregate, or lengths beyond the configured M (not a ΔL run's batch)
    spec = METHODS.get(stats["method"])
    aggregator = None if spec is None else spec.aggregator
    group_ids = stats["group_ids"]
    running, others = batch_costs(
        aggregator or "delta_l",
        lengths,
        max_len,
        alpha=1.0 if stats["alpha"] is None else stats["alpha"],
        group_ids=None if group_ids is None else group_ids.cpu(),
    )
    metrics = {}
    if aggregator is not None:
        metrics["deltal/variance/cv_ratio_to_optimal"] = running.cv_ratio
        metrics["deltal/bias/scale_ratio"] = running.scale_ratio
    for name, cost in others.items():
        if name != "delta_l":
            metrics[f"deltal/variance/cv_ratio/{name}"] = cost.cv_ratio
            metrics[f"deltal/bias/scale_ratio/{name}"] = cost.scale_ratio
    return metrics


register_estimators()
