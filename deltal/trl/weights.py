"""ΔL weights over one TRL generation batch, and the checks of the ΔL options; no TRL import.

TRL's ``GRPOTrainer`` computes advantages once per generation batch, over the completions of every process gathered
in process order (``trl/trainer/grpo_trainer.py``, ``GRPOTrainer._generate_and_score_completions``), with each
prompt's ``num_generations`` completions in consecutive rows: it reads the groups as
``rewards.view(-1, num_generations)``. That gathered batch is what verl's ΔL estimator sees as its training batch,
so the weights are computed on it with the same pure functions (``deltal.algorithm``) and the same options:

* ``scope="batch"``: w_i = L_i^-α / mean_j L_j^-α over the whole generation batch (the paper);
* ``scope="group"``: the mean is taken within each prompt's completions (``deltal.algorithm.groups``);
* ``exclude_zero_advantage``: groups whose completions all have the same advantage are left out of the normaliser
  (their length counts as 0, which every weight function treats as "not a response"). verl's option tests equal
  rewards; TRL's advantages do not carry the rewards, but within a group every TRL advantage is the same increasing
  function of the reward ((r - group mean) / s with one s per group or batch, ``scale_rewards`` group|batch|none,
  when the rewards are summed first: ``multi_objective_aggregation="sum_then_normalize"``), so equal advantages
  are exactly equal rewards. Under ``normalize_then_sum`` a constant group has a non-zero advantage, which is
  why :func:`check_delta_l_options` refuses that pairing.

Library module; nothing to run.
"""

from __future__ import annotations

import torch

from deltal.algorithm import delta_l_advantage_weights
from deltal.algorithm.groups import SCOPES, constant_reward_rows, group_delta_l_advantage_weights
from deltal.algorithm.validation import check_alpha

# The one TRL loss_type whose denominator is a constant, B x max_completion_length (trl/trainer/grpo_trainer.py,
# GRPOTrainer._compute_loss): the aggregation ΔL needs (verl's seq-mean-token-sum-norm with loss_scale_factor = M).
DELTA_L_LOSS_TYPE = "dr_grpo"
# The advantage recipe under which a constant-reward group has advantage 0 (see the module docstring).
SUMMED_REWARDS = "sum_then_normalize"


class DeltaLConfigError(ValueError):
    """A ΔL setting of the TRL adapter is invalid or contradicts a TRL setting; the message says what to change."""


def check_delta_l_options(
    alpha: object,
    scope: object,
    exclude_zero_advantage: object,
    loss_type: object,
    max_completion_length: object,
    multi_objective_aggregation: object = SUMMED_REWARDS,
    use_liger_kernel: object = False,
) -> float:
    """Validate the ΔL fields of a ``DeltaLGRPOConfig`` against each other and TRL's settings; return α as a float.

    Raises DeltaLConfigError naming the field and the fix.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise DeltaLConfigError(f"delta_l_alpha must be a number such as 1.0 or 0.75, got {alpha!r}")
    try:
        value = check_alpha(alpha)
    except ValueError:
        raise DeltaLConfigError(
            f"delta_l_alpha={alpha!r} is invalid: ΔL needs a finite α >= 0 (1.0 = minimum variance, 0.0 = Dr. GRPO "
            "Norm). The paper uses 1.0 for CountDown and 0.75 for Math."
        ) from None
    if scope not in SCOPES:
        raise DeltaLConfigError(
            f"delta_l_scope={scope!r} is not one of {'|'.join(SCOPES)}: 'batch' normalises the ΔL weights over the "
            "whole generation batch (the paper), 'group' within each prompt's completions."
        )
    if not isinstance(exclude_zero_advantage, bool):
        raise DeltaLConfigError(f"delta_l_exclude_zero_advantage must be True or False, got {exclude_zero_advantage!r}")
    if loss_type != DELTA_L_LOSS_TYPE:
        raise DeltaLConfigError(
            f"loss_type={loss_type!r}: ΔL needs loss_type='{DELTA_L_LOSS_TYPE}', TRL's constant denominator "
            "(batch x max_completion_length); any other loss_type divides by lengths or token counts and undoes the "
            f"ΔL weights. Remove the loss_type argument (DeltaLGRPOConfig defaults to '{DELTA_L_LOSS_TYPE}')."
        )
    if isinstance(max_completion_length, bool) or not isinstance(max_completion_length, int):
        raise DeltaLConfigError(
            f"max_completion_length must be a positive integer (the constant M of ΔL's denominator), got "
            f"{max_completion_length!r}. Set e.g. max_completion_length=1024."
        )
    if max_completion_length <= 0:
        raise DeltaLConfigError(f"max_completion_length must be > 0, got {max_completion_length}.")
    if exclude_zero_advantage and multi_objective_aggregation != SUMMED_REWARDS:
        raise DeltaLConfigError(
            f"delta_l_exclude_zero_advantage=True needs multi_objective_aggregation='{SUMMED_REWARDS}': with "
            f"{multi_objective_aggregation!r} a group whose rewards are all equal still has a non-zero advantage, "
            "and leaving it out of the normaliser would zero it. Drop delta_l_exclude_zero_advantage or use "
            f"multi_objective_aggregation='{SUMMED_REWARDS}'."
        )
    if use_liger_kernel:
        raise DeltaLConfigError(
            "use_liger_kernel=True: TRL then computes the loss in Liger's fused GRPO kernel instead of _compute_loss, "
            "whose dr_grpo denominator deltal.trl is tested against. Set use_liger_kernel=False."
        )
    return value


def generation_batch_weights(
    lengths: torch.Tensor,
    advantages: torch.Tensor,
    group_size: int,
    alpha: float,
    scope: str = "batch",
    exclude_zero_advantage: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ΔL weights of every completion of one generation batch (all processes, TRL's row order).

    Args:
        lengths: (N,) tokens that carry loss in each completion (0 for a row TRL masked out entirely).
        advantages: (N,) TRL's advantages, used only to find the groups whose advantages are all equal.
        group_size: completions per prompt (``num_generations``); groups are consecutive rows.
        alpha: ΔL exponent, finite and >= 0.
        scope: ``batch`` or ``group`` (see the module docstring).
        exclude_zero_advantage: leave groups of equal advantages out of the normaliser (their weight is 0).

    Returns:
        (weights, normaliser_lengths): (N,) float32 weights, which have mean 1 over the rows in the normaliser
        (per group in group scope), and (N,) the lengths the weights were normalised over (0 on rows left out).
    """
    if lengths.dim() != 1 or advantages.shape != lengths.shape:
        raise ValueError(
            f"lengths and advantages must both be (N,), got {tuple(lengths.shape)} and {tuple(advantages.shape)}"
        )
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size (num_generations) must be a positive integer, got {group_size!r}")
    if lengths.shape[0] % group_size != 0:
        raise ValueError(
            f"the generation batch has {lengths.shape[0]} completions, not a multiple of num_generations={group_size}"
        )
    group_ids = torch.arange(lengths.shape[0], device=lengths.device) // group_size  # (N,) consecutive groups
    normaliser_lengths = lengths.to(torch.float32)
    if exclude_zero_advantage:
        # Every row of a group counts (a masked-out completion still has its reward), so `valid` is all True.
        constant = constant_reward_rows(advantages, group_ids, torch.ones_like(lengths, dtype=torch.bool))
        normaliser_lengths = torch.where(constant, 0.0, normaliser_lengths)
    if scope == "group":
        weights = group_delta_l_advantage_weights(normaliser_lengths, group_ids, alpha)
    elif scope == "batch":
        weights = delta_l_advantage_weights(normaliser_lengths, alpha)
    else:
        raise ValueError(f"scope must be one of {'|'.join(SCOPES)}, got {scope!r}")
    return weights, normaliser_lengths
