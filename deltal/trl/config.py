"""``DeltaLGRPOConfig``: TRL's ``GRPOConfig`` plus the three ΔL fields, checked once when the config is built.

Its fields read like TRL's own (a ``help`` per field, so ``TrlParser`` and ``HfArgumentParser`` turn them into
command-line options). ``loss_type`` defaults to ``dr_grpo``, the only TRL aggregation with a constant denominator;
every other TRL setting keeps TRL's meaning and default. Library module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from deltal.trl.weights import DELTA_L_LOSS_TYPE, check_delta_l_options


@dataclass
class DeltaLGRPOConfig(GRPOConfig):
    """``GRPOConfig`` for ``DeltaLGRPOTrainer``: ΔL reweights each completion's advantage by
    w_i = L_i^-α / mean_j L_j^-α over the generation batch, and ``loss_type="dr_grpo"`` divides the summed token
    losses by the constant batch x ``max_completion_length``."""

    loss_type: str = field(
        default=DELTA_L_LOSS_TYPE,
        metadata={
            "help": "Must stay 'dr_grpo' for ΔL: TRL's one loss aggregation with a constant denominator "
            "(batch x max_completion_length), which keeps the ΔL weights intact."
        },
    )
    delta_l_alpha: float = field(
        default=1.0,
        metadata={
            "help": "ΔL exponent α in w_i = L_i^-α / mean_j L_j^-α: 1.0 is the minimum-variance unbiased choice "
            "(the paper's CountDown runs), 0.75 the paper's Math runs, 0.0 equals Dr. GRPO."
        },
    )
    delta_l_scope: str = field(
        default="batch",
        metadata={
            "help": "Where the ΔL weights are normalised: 'batch' over the whole generation batch of all processes "
            "(the paper), 'group' within each prompt's completions (every prompt keeps its total weight)."
        },
    )
    delta_l_exclude_zero_advantage: bool = field(
        default=False,
        metadata={
            "help": "Leave groups whose completions all have the same reward (advantage 0) out of the ΔL "
            "normaliser, so that they do not shift the other completions' weights."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        self.delta_l_alpha = check_delta_l_options(
            self.delta_l_alpha,
            self.delta_l_scope,
            self.delta_l_exclude_zero_advantage,
            self.loss_type,
            self.max_completion_length,
            self.multi_objective_aggregation,
            self.use_liger_kernel,
        )
