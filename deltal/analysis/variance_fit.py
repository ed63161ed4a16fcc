"""α from measurement: fit Var(g_i) ∝ L_i^β on per-response gradients and suggest the ΔL exponent α = β.

The paper assumes Var(g_i) = V·L_i (β = 1), for which ΔL at α = 1 is the minimum-variance unbiased combination.
In general the minimum-variance unbiased weights are x_i ∝ 1/Var(g_i) ∝ L_i^-β, i.e. ΔL with α = β, so a measured β
is a measured α. The fit is ordinary least squares of log v_i on log L_i over the responses of the variance lab,
with a Student-t confidence interval on the slope.

v_i estimates Var(g_i) from the squared deviation d_i = ||g_i − ḡ||², which is biased by the noise in ḡ: with N
independent responses and S = Σ_j Var(g_j), E d_i = (1 − 2/N) Var(g_i) + S/N² and E Σ_i d_i = (1 − 1/N) S. So
v_i = (d_i − Σ_j d_j / (N(N − 1))) / (1 − 2/N) is unbiased; without the correction the common S/N² term inflates
the short responses' variance and pulls β toward 0. Responses whose v_i is not positive (possible for the shortest
ones) cannot enter a log fit and are counted as dropped.
Library module; the command line is ``python -m deltal.analysis.variance model`` (it prints the override line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import torch

ALPHA_OVERRIDE_KEY = "algorithm.grpopp_config.alpha"


@dataclass(frozen=True)
class PowerLawFit:
    """Var(g_i) ≈ prefactor · L_i^exponent, fitted in log-log space."""

    exponent: float
    """β, the slope of log Var against log L."""
    exponent_low: float
    exponent_high: float
    """The confidence interval of β."""
    confidence: float
    prefactor: float
    r2: float
    """R² of the log-log fit."""
    num_points: int
    """Responses used (positive variance estimate, length > 0)."""
    num_dropped: int
    """Responses left out because their variance estimate was not positive."""

    @property
    def suggested_alpha(self) -> float:
        """α = β (x_i ∝ 1/Var(g_i)), clipped at 0 because ΔL needs α >= 0."""
        return max(self.exponent, 0.0)


def corrected_variances(squared_deviations: torch.Tensor) -> torch.Tensor:
    """Unbiased per-response variance estimates v_i from d_i = ||g_i − ḡ||² (see the module docstring): (N,) float64."""
    deviations = squared_deviations.to(torch.float64)
    count = deviations.numel()
    if count < 3:
        raise ValueError(f"need at least 3 responses to estimate per-response variances, got {count}")
    return (deviations - deviations.sum() / (count * (count - 1))) / (1.0 - 2.0 / count)


def student_t_quantile(probability: float, dof: int) -> float:
    """Quantile of Student's t distribution with `dof` degrees of freedom (bisection on a Simpson-integrated CDF)."""
    if not 0.5 <= probability < 1.0 or dof < 1:
        raise ValueError(f"need 0.5 <= probability < 1 and dof >= 1, got {probability} and {dof}")
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def upper_half_mass(t: float) -> float:  # P(0 <= T <= t) by Simpson's rule on 2000 intervals
        x = torch.linspace(0.0, t, 2001, dtype=torch.float64)
        density = torch.exp(log_norm - (dof + 1) / 2 * torch.log1p(x.square() / dof))
        weights = torch.ones(2001, dtype=torch.float64)
        weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
        return float((weights * density).sum()) * t / 6000.0

    target = probability - 0.5
    low, high = 0.0, max(4.0, 2.0 * NormalDist().inv_cdf(probability))
    while upper_half_mass(high) < target:  # heavy tails at small dof need a wider bracket
        high *= 2.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if upper_half_mass(middle) < target else (low, middle)
    return (low + high) / 2


def fit_power_law(lengths: torch.Tensor, variances: torch.Tensor, confidence: float = 0.95) -> PowerLawFit:
    """Least-squares fit of log variances = log prefactor + β log lengths, with a two-sided CI on β.

    Args:
        lengths: (N,) response lengths in tokens.
        variances: (N,) per-response variance estimates (e.g. `corrected_variances`); rows <= 0 are dropped.
        confidence: coverage of the interval on β, in (0, 1).

    Raises ValueError (naming the fix) when fewer than 3 usable responses remain or their lengths are all equal.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    lengths, variances = lengths.to(torch.float64), variances.to(torch.float64)
    if lengths.shape != variances.shape or lengths.dim() != 1:
        raise ValueError(f"lengths {tuple(lengths.shape)} and variances {tuple(variances.shape)} must be equal 1-D")
    usable = (lengths > 0) & (variances > 0) & torch.isfinite(variances)
    count = int(usable.sum())
    if count < 3:
        raise ValueError(
            f"only {count} responses have a positive variance estimate; a fit needs 3 or more: raise --num-responses"
        )
    x, y = lengths[usable].log(), variances[usable].log()
    x_centered, y_centered = x - x.mean(), y - y.mean()
    spread = float(x_centered.square().sum())
    if spread == 0.0:
        raise ValueError(
            "every response has the same length, so variance cannot be fitted against length; raise "
            "--max-new-tokens, --num-responses or --temperature"
        )
    slope = float((x_centered * y_centered).sum()) / spread
    intercept = float(y.mean()) - slope * float(x.mean())
    residual = float((y_centered - slope * x_centered).square().sum())
    total = float(y_centered.square().sum())
    dof = count - 2
    half_width = (
        student_t_quantile(0.5 + confidence / 2, dof) * math.sqrt(residual / dof / spread) if dof > 0 else math.inf
    )
    return PowerLawFit(
        exponent=slope,
        exponent_low=slope - half_width,
        exponent_high=slope + half_width,
        confidence=confidence,
        prefactor=math.exp(intercept),
        r2=1.0 - residual / total if total > 0 else math.nan,
        num_points=count,
        num_dropped=int(lengths.numel()) - count,
    )


def alpha_override(fit: PowerLawFit) -> str:
    """The hydra override that applies the suggestion, e.g. ``algorithm.grpopp_config.alpha=0.83``."""
    return f"{ALPHA_OVERRIDE_KEY}={fit.suggested_alpha:.2f}"


def describe_fit(fit: PowerLawFit) -> str:
    """One human line: β with its interval, the fit quality, and what the suggestion means."""
    dropped = f", {fit.num_dropped} dropped (variance estimate <= 0)" if fit.num_dropped else ""
    return (
        f"Var(g_i) ∝ L_i^β: β = {fit.exponent:.3f} ({fit.confidence:.0%} CI {fit.exponent_low:.3f} .. "
        f"{fit.exponent_high:.3f}), log-log R² {fit.r2:.3f} over {fit.num_points} responses{dropped}; "
        f"minimum-variance ΔL under this fit: α = {fit.suggested_alpha:.2f}"
    )
