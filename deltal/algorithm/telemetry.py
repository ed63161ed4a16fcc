"""Variance and bias telemetry: what an aggregation costs on one batch's actual lengths, under the paper's model.

Model (paper section 3, `deltal.algorithm.theory`): independent g_i with E g_i = μ and Var(g_i) = V·L_i. A method
with coefficients x_i has E ĝ = (Σ x_i) μ and CV ∝ sqrt(Σ x_i² L_i) / Σ x_i. Two scale-free numbers per method:

* **cv_ratio**: its CV divided by the CV of ΔL at α = 1 on the same lengths. ΔL(α=1) is the minimum-variance
  unbiased combination (x_i ∝ 1/Var(g_i)), so by Cauchy–Schwarz the ratio is >= 1, and exactly 1 for ΔL(α=1).
  V and ||μ|| cancel, so it needs nothing but the lengths.
* **scale_ratio**: Σ x_i relative to the unbiased 1/M. Dr. GRPO Norm and ΔL (any α, either scope) give 1; GRPO
  Norm gives M·mean(1/L) and DAPO Norm M/mean(L), which shrink as responses grow: their length-dependent bias.

The batch is treated as the paper's group: x_i are the coefficients of `deltal.algorithm.aggregation_coefficients`
on the batch's lengths (rows of length 0, i.e. padding or rows left out of the weight normaliser, are not
responses). Group-scope ΔL uses x_i = w_i / (n·M) with the group weights of `deltal.algorithm.groups` and n valid
rows. Library module; computed once per step on the host by deltal's estimator metrics.
"""

from dataclasses import dataclass

import torch

from deltal.algorithm.aggregation import AGGREGATORS, aggregation_coefficients, check_aggregator
from deltal.algorithm.groups import group_delta_l_advantage_weights
from deltal.algorithm.theory import linear_combination_moments

OPTIMAL_ALPHA = 1.0  # ΔL at α = 1: x_i ∝ 1/L_i ∝ 1/Var(g_i)


@dataclass(frozen=True)
class AggregationCost:
    """Variance and bias of one aggregation on one batch's lengths, relative to the ideal."""

    cv_ratio: float
    """CV of Σ x_i g_i divided by ΔL(α=1)'s CV on the same lengths (>= 1; 1 is the minimum)."""
    scale_ratio: float
    """Σ x_i · M: 1 for the unbiased methods, length-dependent for GRPO and DAPO Norm."""


def method_coefficients(
    aggregator: str,
    lengths: torch.Tensor,
    max_response_length: float,
    alpha: float = 1.0,
    group_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Coefficients x_i of one method on a batch: batch scope without `group_ids`, group scope (ΔL only) with them.

    Args:
        aggregator: one of `AGGREGATORS`.
        lengths: (bs,) response lengths in [0, M]; rows of length 0 get coefficient 0.
        max_response_length: M.
        alpha: ΔL exponent.
        group_ids: (bs,) contiguous group indices; selects group scope, which only ΔL has.

    Returns:
        (bs,) float64 coefficients.
    """
    lengths = lengths.to(torch.float64)
    coefficients = aggregation_coefficients(aggregator, lengths, max_response_length, alpha)  # validates everything
    if group_ids is None:
        return coefficients
    if aggregator != "delta_l":
        raise ValueError(f"group scope only exists for delta_l, not {aggregator}; pass group_ids=None")
    weights = group_delta_l_advantage_weights(lengths, group_ids, alpha)  # (bs,) mean 1 within each group
    valid_count = (lengths > 0).sum().clamp(min=1).to(torch.float64)
    return weights / (valid_count * float(max_response_length))


def optimal_cv(lengths: torch.Tensor, max_response_length: float) -> float:
    """CV of ΔL at α = 1 on `lengths` (V = ||μ|| = 1): the denominator of every cv_ratio.

    Raises ValueError when no row has length > 0 (there is no response to aggregate).
    """
    lengths = lengths.to(torch.float64)
    if not bool((lengths > 0).any()):
        raise ValueError("the variance telemetry needs at least one response with length > 0")
    optimal = aggregation_coefficients("delta_l", lengths, max_response_length, OPTIMAL_ALPHA)
    return linear_combination_moments(optimal, lengths, token_variance=1.0).cv


def aggregation_cost(
    coefficients: torch.Tensor, lengths: torch.Tensor, max_response_length: float, reference_cv: float | None = None
) -> AggregationCost:
    """cv_ratio and scale_ratio of the coefficients `coefficients` on `lengths` (see the module docstring).

    `reference_cv` is `optimal_cv(lengths, max_response_length)`, computed here unless the caller has it.
    """
    if reference_cv is None:
        reference_cv = optimal_cv(lengths, max_response_length)
    moments = linear_combination_moments(coefficients, lengths.to(torch.float64), token_variance=1.0)
    return AggregationCost(
        cv_ratio=moments.cv / reference_cv, scale_ratio=moments.expectation_scale * float(max_response_length)
    )


def batch_costs(
    aggregator: str,
    lengths: torch.Tensor,
    max_response_length: float,
    alpha: float = 1.0,
    group_ids: torch.Tensor | None = None,
) -> tuple[AggregationCost, dict[str, AggregationCost]]:
    """The running method's cost and every paper aggregator's cost (ΔL at α = 1) on the same lengths.

    Args:
        aggregator: the running method's aggregator (one of `AGGREGATORS`).
        lengths: (bs,) lengths of the responses in the weight normaliser; 0 for rows that are not.
        max_response_length: M.
        alpha: the running ΔL exponent.
        group_ids: (bs,) group indices when the running method is group-scope ΔL, else None.

    Returns:
        (running cost, {aggregator name: cost} for every name in `AGGREGATORS`).
    """
    check_aggregator(aggregator)
    lengths = lengths.to(torch.float64)
    reference = optimal_cv(lengths, max_response_length)
    running = aggregation_cost(
        method_coefficients(aggregator, lengths, max_response_length, alpha, group_ids),
        lengths,
        max_response_length,
        reference,
    )
    others = {
        name: aggregation_cost(
            aggregation_coefficients(name, lengths, max_response_length, OPTIMAL_ALPHA),
            lengths,
            max_response_length,
            reference,
        )
        for name in AGGREGATORS
    }
    return running, others
