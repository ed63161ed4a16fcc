"""The paper's loss-aggregation methods, each as the verl settings it stands for.

One table, read by the config resolver, the README and the tests. Every method uses the same GRPO group
advantage (std-normalised) except Dr. GRPO, which drops the std, as in Liu et al. (2025).

| method         | per-response weight on g_i       | verl loss_agg_mode        | loss_scale_factor | adv std |
|----------------|----------------------------------|---------------------------|-------------------|---------|
| grpo_norm      | 1/(G·L_i)        (biased)        | seq-mean-token-mean       | -                 | yes     |
| dapo_norm      | 1/ΣL             (biased)        | token-mean                | -                 | yes     |
| dr_grpo_norm   | 1/(G·M)          (unbiased)      | seq-mean-token-sum-norm   | M                 | yes     |
| dr_grpo        | 1/(G·M)          (unbiased)      | seq-mean-token-sum-norm   | M                 | no      |
| delta_l        | L_i^-α/(M·Σ_j L_j^-α) (unbiased) | seq-mean-token-sum-norm   | M                 | yes     |

M is ``data.max_response_length``, a constant: verl's default divisor for the ``-norm`` mode is the longest
response of each micro-batch, which would make the loss depend on how the batch is split.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MethodSpec:
    """The verl settings one paper method stands for."""

    estimator: str
    loss_agg_mode: str
    constant_denominator: bool  # loss_scale_factor = max response length
    norm_adv_by_std: bool
    summary: str


METHODS: dict[str, MethodSpec] = {
    "grpo_norm": MethodSpec(
        "deltal_grpo",
        "seq-mean-token-mean",
        False,
        True,
        "GRPO Norm: mean over each response's tokens, then over responses",
    ),
    "dapo_norm": MethodSpec(
        "deltal_grpo", "token-mean", False, True, "DAPO Norm: sum over all tokens divided by the total token count"
    ),
    "dr_grpo_norm": MethodSpec(
        "deltal_grpo", "seq-mean-token-sum-norm", True, True, "Dr. GRPO Norm: token sums divided by a constant M"
    ),
    "dr_grpo": MethodSpec(
        "deltal_grpo",
        "seq-mean-token-sum-norm",
        True,
        False,
        "Dr. GRPO: Dr. GRPO Norm with advantages not divided by the group std",
    ),
    "delta_l": MethodSpec(
        "delta_l",
        "seq-mean-token-sum-norm",
        True,
        True,
        "ΔL Normalization: GRPO advantage × L_i^-α/mean_j L_j^-α, token sums divided by M",
    ),
}

# verl's loss_agg_mode -> the paper method it means when neither switch (use_grpopp, use_dr_grpo) is on.
METHOD_BY_LOSS_AGG_MODE: dict[str, str] = {
    "seq-mean-token-mean": "grpo_norm",
    "token-mean": "dapo_norm",
    "seq-mean-token-sum-norm": "dr_grpo_norm",
}

# Each method's per-response coefficients x_i as an aggregator of deltal.algorithm (Dr. GRPO shares Dr. GRPO Norm's);
# the estimator's variance telemetry evaluates them on every batch.
AGGREGATOR_BY_METHOD: dict[str, str] = {
    "grpo_norm": "grpo_norm",
    "dapo_norm": "dapo_norm",
    "dr_grpo_norm": "dr_grpo_norm",
    "dr_grpo": "dr_grpo_norm",
    "delta_l": "delta_l",
}
