"""The method registry: every loss-aggregation method deltal trains, with the verl settings it stands for.

This is the one list of method names. The config resolver, the ``method=`` presets, ``deltal.analysis``'s labels,
the quickstart script and the tests all read it (a test checks the presets and the script against it). Every
method uses the same GRPO group advantage (std-normalised) except Dr. GRPO, which drops the std.

| method         | per-response weight on g_i       | verl loss_agg_mode        | loss_scale_factor | adv std |
|----------------|----------------------------------|---------------------------|-------------------|---------|
| grpo_norm      | 1/(G·L_i)        (biased)        | seq-mean-token-mean       | -                 | yes     |
| dapo_norm      | 1/ΣL             (biased)        | token-mean                | -                 | yes     |
| dr_grpo_norm   | 1/(G·M)          (unbiased)      | seq-mean-token-sum-norm   | M                 | yes     |
| dr_grpo        | 1/(G·M)          (unbiased)      | seq-mean-token-sum-norm   | M                 | no      |
| delta_l        | L_i^-α/(M·Σ_j L_j^-α) (unbiased) | seq-mean-token-sum-norm   | M                 | yes     |

M is ``data.max_response_length``, a constant: verl's default divisor for the ``-norm`` mode is the longest
response of each micro-batch, which would make the loss depend on how the batch is split.

Pure data (no verl import), so analysis and scripts can read it without loading verl.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltal.algorithm import AGGREGATORS

DELTA_L_PAPER = "ΔL Normalization: Rethink Loss Aggregation in RLVR (arXiv 2509.07558)"


@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """One method: its names, where it comes from, when to use it, and the verl settings it stands for."""

    name: str
    """The ``method=`` preset name (also the file ``deltal/config/method/<name>.yaml``)."""
    label: str
    """Name used in the paper's tables and in plots."""
    paper: str
    """Where the method is defined."""
    use_when: str
    """When to choose it."""
    avoid_when: str
    """When not to choose it."""
    aggregator: str
    """Its coefficient formula x_i in ``deltal.algorithm.aggregation`` (one of ``AGGREGATORS``)."""
    estimator: str
    """verl advantage estimator deltal registers for it."""
    loss_agg_mode: str
    """verl's ``actor.loss_agg_mode``."""
    constant_denominator: bool
    """``actor.loss_scale_factor`` = M (max response length) instead of verl's per-micro-batch divisor."""
    norm_adv_by_std: bool
    """Group advantages are divided by the group's reward std."""
    reweights: bool = False
    """The estimator multiplies advantages by the ΔL weights L_i^-α / mean_j L_j^-α (reads α)."""


def _registry(*specs: MethodSpec) -> dict[str, MethodSpec]:
    for spec in specs:
        if spec.aggregator not in AGGREGATORS:
            raise ValueError(f"method {spec.name}: unknown aggregator {spec.aggregator!r}; use one of {AGGREGATORS}")
    return {spec.name: spec for spec in specs}


METHODS: dict[str, MethodSpec] = _registry(
    MethodSpec(
        name="grpo_norm",
        label="GRPO Norm",
        paper="Shao et al. (2024), DeepSeekMath (GRPO)",
        use_when="reproducing GRPO's own aggregation as a baseline",
        avoid_when="lengths vary a lot: dividing by each response's length biases the gradient toward short answers",
        aggregator="grpo_norm",
        estimator="deltal_grpo",
        loss_agg_mode="seq-mean-token-mean",
        constant_denominator=False,
        norm_adv_by_std=True,
    ),
    MethodSpec(
        name="dapo_norm",
        label="DAPO Norm",
        paper="Yu et al. (2025), DAPO",
        use_when="reproducing DAPO, or when a per-token average over the batch is wanted",
        avoid_when="an unbiased estimate is needed: the divisor depends on the batch's total length",
        aggregator="dapo_norm",
        estimator="deltal_grpo",
        loss_agg_mode="token-mean",
        constant_denominator=False,
        norm_adv_by_std=True,
    ),
    MethodSpec(
        name="dr_grpo_norm",
        label="Dr. GRPO Norm",
        paper="Liu et al. (2025), Understanding R1-Zero-Like Training (Dr. GRPO)",
        use_when="an unbiased baseline with std-normalised advantages (ΔL with α = 0)",
        avoid_when="lengths vary a lot: long responses dominate the gradient's variance",
        aggregator="dr_grpo_norm",
        estimator="deltal_grpo",
        loss_agg_mode="seq-mean-token-sum-norm",
        constant_denominator=True,
        norm_adv_by_std=True,
    ),
    MethodSpec(
        name="dr_grpo",
        label="Dr. GRPO",
        paper="Liu et al. (2025), Understanding R1-Zero-Like Training (Dr. GRPO)",
        use_when="reproducing Dr. GRPO as published: constant denominator and no std division",
        avoid_when="groups with tiny reward spread need the std scaling to learn at all",
        aggregator="dr_grpo_norm",
        estimator="deltal_grpo",
        loss_agg_mode="seq-mean-token-sum-norm",
        constant_denominator=True,
        norm_adv_by_std=False,
    ),
    MethodSpec(
        name="delta_l",
        label="ΔL Norm",
        paper=DELTA_L_PAPER,
        use_when="the default: unbiased and minimum variance at α = 1 (paper: α = 1 for CountDown, 0.75 for Math)",
        avoid_when="you need to match a baseline's aggregation exactly",
        aggregator="delta_l",
        estimator="delta_l",
        loss_agg_mode="seq-mean-token-sum-norm",
        constant_denominator=True,
        norm_adv_by_std=True,
        reweights=True,
    ),
)

# verl's loss_agg_mode -> the paper method it means when neither switch (use_grpopp, use_dr_grpo) is on.
METHOD_BY_LOSS_AGG_MODE: dict[str, str] = {
    "seq-mean-token-mean": "grpo_norm",
    "token-mean": "dapo_norm",
    "seq-mean-token-sum-norm": "dr_grpo_norm",
}
