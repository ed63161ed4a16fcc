"""Bias, variance and coefficient of variation of length-aggregated policy gradients (paper section 3, Table 1).

Model: response i of length L_i has an unnormalised gradient g_i with E g_i = μ = ∇J and Var(g_i) = V · L_i
(the variance grows linearly with length). For ĝ = Σ x_i g_i:

    E ĝ = (Σ x_i) μ        Var ĝ = V Σ x_i² L_i        CV = sqrt(Var ĝ) / (|Σ x_i| · ||μ||)

`linear_combination_moments` evaluates these for any coefficients; `closed_form_moments` evaluates the per-method
closed forms of Table 1, so tests can check one against the other. Library module; nothing to run.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from deltal.algorithm.aggregation import check_aggregator, check_group_lengths
from deltal.algorithm.validation import check_alpha


@dataclass(frozen=True)
class Moments:
    """Moments of an aggregated gradient ĝ in units of the true gradient μ and the per-token variance V."""

    expectation_scale: float
    """c in E ĝ = c · μ; an estimator is unbiased (up to a constant step size) when c does not depend on L."""
    variance: float
    """Var ĝ = V Σ x_i² L_i."""
    cv: float
    """sqrt(Var ĝ) / (|c| · ||μ||); inf when c = 0."""


def as_float64_vector(values: torch.Tensor | Sequence[float], name: str) -> torch.Tensor:
    """Convert a 1-D tensor or sequence to a float64 CPU tensor, or raise ValueError."""
    vector = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if vector.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one entry per response), got shape {tuple(vector.shape)}")
    return vector


def moments_from_sums(expectation_scale: float, variance: float, grad_norm: float) -> Moments:
    """Assemble Moments, deriving the coefficient of variation from the scale and the variance."""
    if not math.isfinite(grad_norm) or grad_norm <= 0:
        raise ValueError(f"grad_norm (||μ||) must be finite and > 0, got {grad_norm!r}")
    denominator = abs(expectation_scale) * grad_norm
    cv = math.sqrt(variance) / denominator if denominator > 0 else math.inf
    return Moments(expectation_scale=expectation_scale, variance=variance, cv=cv)


def check_token_variance(token_variance: float) -> float:
    """Return V as a float, or raise ValueError unless it is finite and >= 0."""
    value = float(token_variance)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"token_variance (V) must be finite and >= 0, got {token_variance!r}")
    return value


def linear_combination_moments(
    coefficients: torch.Tensor | Sequence[float],
    lengths: torch.Tensor | Sequence[float],
    token_variance: float,
    grad_norm: float = 1.0,
) -> Moments:
    """Moments of ĝ = Σ x_i g_i for arbitrary coefficients x_i (the generic formula).

    Args:
        coefficients: (G,) x_i.
        lengths: (G,) response lengths L_i >= 0; rows of length 0 must have coefficient 0 (they carry no gradient).
        token_variance: V in Var(g_i) = V · L_i.
        grad_norm: ||μ||, only used for the CV.
    """
    x = as_float64_vector(coefficients, "coefficients")
    lengths = as_float64_vector(lengths, "lengths")
    if x.shape != lengths.shape:
        raise ValueError(f"coefficients {tuple(x.shape)} and lengths {tuple(lengths.shape)} must have the same shape")
    if bool((lengths < 0).any()):
        raise ValueError("lengths must be >= 0")
    if bool(((lengths == 0) & (x != 0)).any()):
        raise ValueError("rows of length 0 are padding and must have coefficient 0; zero them or drop those rows")
    variance = check_token_variance(token_variance) * float((x.square() * lengths).sum())
    return moments_from_sums(float(x.sum()), variance, float(grad_norm))


def closed_form_moments(
    aggregator: str,
    lengths: torch.Tensor | Sequence[float],
    token_variance: float,
    max_response_length: float,
    alpha: float = 1.0,
    grad_norm: float = 1.0,
) -> Moments:
    """Moments from the per-method closed forms of paper Table 1 (G and all sums over the valid rows).

    For ΔL with general α the closed form is E = μ/M, Var = V Σ L^(1-2α) / (M² (Σ L^-α)²), which is Table 1's
    V / (M² Σ 1/L) at α = 1 and Dr. GRPO's V Σ L / (G² M²) at α = 0.
    """
    check_aggregator(aggregator)
    alpha = check_alpha(alpha)
    lengths = as_float64_vector(lengths, "lengths")
    limit = check_group_lengths(lengths, max_response_length)
    variance_unit = check_token_variance(token_variance)
    valid_lengths = lengths[lengths > 0]
    if valid_lengths.numel() == 0:
        raise ValueError("closed forms need at least one response with length > 0")
    group_size = float(valid_lengths.numel())
    sum_lengths = float(valid_lengths.sum())
    sum_inverse_lengths = float(valid_lengths.reciprocal().sum())
    if aggregator == "grpo_norm":
        scale = sum_inverse_lengths / group_size
        variance = variance_unit * sum_inverse_lengths / group_size**2
    elif aggregator == "dapo_norm":
        scale = group_size / sum_lengths
        variance = variance_unit / sum_lengths
    elif aggregator == "dr_grpo_norm":
        scale = 1.0 / limit
        variance = variance_unit * sum_lengths / (group_size**2 * limit**2)
    elif alpha == 1.0:  # delta_l, Table 1 row
        scale = 1.0 / limit
        variance = variance_unit / (limit**2 * sum_inverse_lengths)
    else:  # delta_l, general α
        scale = 1.0 / limit
        sum_inverse_powers = float(valid_lengths.pow(-alpha).sum())
        variance = variance_unit * float(valid_lengths.pow(1.0 - 2.0 * alpha).sum()) / (limit * sum_inverse_powers) ** 2
    return moments_from_sums(scale, variance, float(grad_norm))
