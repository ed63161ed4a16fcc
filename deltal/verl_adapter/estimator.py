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

verl does not pass ``norm_adv_by_std_in_grpo`` to custom estimators, so it is read from ``config``. α and M are
read only from ``algorithm.deltal.*``, which :func:`deltal.verl_adapter.config.resolve_config` derives and checks
once; the user's ``grpopp_config`` is never read here.
Per-step statistics (weights, lengths, truncation) are kept for :func:`pop_step_metrics`, which deltal's
trainer calls; the tensors are stored as they are, so the estimator itself never syncs with the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import compute_grpo_vectorized_outcome_advantage

from deltal.algorithm import delta_l_advantage_weights, filter_overlong, response_lengths
from deltal.verl_adapter.config import ConfigError

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

    lengths = response_lengths(response_mask)  # (bs,)
    # One advantage per response first ((bs, 1) "mask" of ones), so filtering and weighting touch bs numbers and
    # the only pass over (bs, response_len) is the final broadcast, as in verl's own vectorised GRPO.
    per_response, _ = compute_grpo_vectorized_outcome_advantage(
        token_level_rewards=token_level_rewards,
        response_mask=torch.ones_like(lengths).unsqueeze(-1),
        index=index,
        norm_adv_by_std_in_grpo=norm_by_std,
    )
    per_response = per_response.squeeze(-1)  # (bs,)
    if filter_enabled:
        per_response = filter_overlong(per_response, lengths, max_len)
    weights = None
    if alpha is not None:
        weights = delta_l_advantage_weights(lengths, alpha)  # (bs,), 0 on batch-padding rows
        per_response = per_response * weights
    advantages = per_response.unsqueeze(-1) * response_mask  # (bs, response_len), zero on padding tokens

    _pending_step_stats.clear()
    _pending_step_stats.update(lengths=lengths, weights=weights, max_len=max_len, alpha=alpha, filtered=filter_enabled)
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


def _quantiles(values: torch.Tensor, prefix: str) -> dict[str, float]:
    qs = torch.quantile(values.double(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64, device=values.device))
    p10, p50, p90 = qs.tolist()
    return {
        f"{prefix}/mean": values.double().mean().item(),
        f"{prefix}/min": values.min().item(),
        f"{prefix}/max": values.max().item(),
        f"{prefix}/std": values.double().std(unbiased=False).item(),
        f"{prefix}/p10": p10,
        f"{prefix}/p50": p50,
        f"{prefix}/p90": p90,
    }


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
    weights = stats["weights"]
    if weights is None:
        weights = torch.ones_like(valid_lengths)
    else:
        weights = weights[valid].float()
        metrics["deltal/alpha"] = float(stats["alpha"])
    metrics.update(_quantiles(weights, "deltal/adv_weight"))
    max_len = stats["max_len"]
    if max_len is not None:
        truncated = (valid_lengths >= max_len).double().mean().item()
        metrics["deltal/truncated_fraction"] = truncated
        if stats["filtered"]:
            metrics["deltal/overlong_filtered_fraction"] = truncated
    return metrics
