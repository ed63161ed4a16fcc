"""Synthetic variance lab: Monte Carlo of every aggregator against the closed forms of paper Table 1.

Model (paper section 2.3): response i of a group of G has an unnormalised gradient g_i ~ N(μ, (V·L_i/d)·I_d) in d
dimensions, so its total variance E||g_i − μ||² is V·L_i, the paper's definition of Var(g_i). Each aggregator forms
ĝ = Σ x_i g_i with the coefficients of `deltal.algorithm.aggregation_coefficients`.

Definitions (lengths are redrawn per trial, so everything is conditional on a trial's lengths and then averaged):
for each of ``batches`` trials b we draw G lengths L_b, then ``draws`` independent gradient sets given L_b, and
estimate

* expectation_scale_b = (m_b · μ) / ||μ||², m_b the mean of ĝ over the draws (the c in E[ĝ | L_b] = c·μ);
* variance_b = Σ_k ||ĝ_k − m_b||² / (draws − 1) (total variance of ĝ given L_b);
* cv_b = sqrt(variance_b) / (|expectation_scale_b| · ||μ||) (Table 1's CV, with ||E ĝ|| = |c|·||μ||).

Each reported value is the mean over trials, and each ``*_closed_form`` column is the mean over the same trials of
`deltal.algorithm.closed_form_moments` at L_b. The spread of c across trials (GRPO/DAPO's length bias) is thus not
part of "variance"; compare expectation scales across length distributions to see it.
Library module; command line: ``python -m deltal.analysis.variance synthetic --lengths longtail --out DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from deltal.algorithm import AGGREGATORS, aggregation_coefficients, closed_form_moments
from deltal.analysis.variance_lengths import check_distribution, sample_lengths

SYNTHETIC_COLUMNS: tuple[str, ...] = (
    "aggregator",
    "expectation_scale",
    "expectation_scale_closed_form",
    "variance",
    "variance_closed_form",
    "cv",
    "cv_closed_form",
)
# Every coefficient formula but ΔL, which gets one row per α.
BASELINE_AGGREGATORS = tuple(name for name in AGGREGATORS if name != "delta_l")


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of one synthetic run; every field is a command-line flag of the same name."""

    lengths: str = "longtail"
    """uniform, longtail, or a CSV/JSONL file of logged response lengths."""
    alphas: tuple[float, ...] = (1.0, 0.75, 0.5)
    """ΔL exponents; one `delta_l_alpha_<α>` row each."""
    group_size: int = 16
    """G, responses aggregated together."""
    batches: int = 200
    """Trials: independent draws of the G lengths."""
    draws: int = 512
    """Gradient draws per trial (Monte Carlo samples of ĝ given the lengths)."""
    dim: int = 32
    """d, dimension of the synthetic gradient."""
    token_variance: float = 1.0
    """V, variance per token."""
    grad_norm: float = 1.0
    """||μ||, norm of the true gradient."""
    max_response_length: int = 3072
    """M, the generation limit (Dr. GRPO's and ΔL's constant)."""
    seed: int = 0
    """Seed of the length and gradient draws."""


def aggregator_names(alphas: tuple[float, ...]) -> list[tuple[str, str, float]]:
    """(row name, aggregator, α) for the baselines and one ΔL row per α, named ``delta_l_alpha_<α:g>``."""
    rows = [(name, name, 1.0) for name in BASELINE_AGGREGATORS]
    return rows + [(f"delta_l_alpha_{alpha:g}", "delta_l", float(alpha)) for alpha in alphas]


def check_config(config: SyntheticConfig) -> None:
    """Raise ValueError naming the flag to change for settings the estimators cannot use."""
    if config.group_size < 1 or config.batches < 1 or config.dim < 1:
        raise ValueError("--group-size, --batches and --dim must be >= 1")
    if config.draws < 2:
        raise ValueError("--draws must be >= 2 to estimate a variance")
    if config.token_variance <= 0 or config.grad_norm <= 0:
        raise ValueError("--token-variance and --grad-norm must be > 0")
    if len(set(config.alphas)) != len(config.alphas):
        raise ValueError(f"--alphas has duplicates: {config.alphas}")


def run_synthetic(config: SyntheticConfig) -> pd.DataFrame:
    """Run the Monte Carlo and return one row per aggregator with columns `SYNTHETIC_COLUMNS`."""
    check_config(config)
    logged = check_distribution(config.lengths, config.max_response_length)
    generator = torch.Generator().manual_seed(config.seed)
    direction = torch.randn(config.dim, generator=generator, dtype=torch.float64)
    mu = direction / direction.norm() * config.grad_norm  # (d,)
    names = aggregator_names(config.alphas)
    sums = {name: dict.fromkeys(SYNTHETIC_COLUMNS[1:], 0.0) for name, _, _ in names}
    for _ in tqdm(range(config.batches), desc="synthetic trials", unit="trial"):
        lengths = sample_lengths(config.lengths, config.group_size, config.max_response_length, generator, logged)
        noise_scale = (config.token_variance * lengths / config.dim).sqrt()  # (G,)
        noise = torch.randn(config.draws, config.group_size, config.dim, generator=generator, dtype=torch.float64)
        gradients = mu + noise * noise_scale[None, :, None]  # (draws, G, d)
        coefficients = torch.stack(
            [
                aggregation_coefficients(aggregator, lengths, config.max_response_length, alpha)
                for _, aggregator, alpha in names
            ]
        )  # (A, G)
        aggregated = torch.einsum("ag,kgd->akd", coefficients, gradients)  # (A, draws, d)
        means = aggregated.mean(dim=1)  # (A, d)
        variances = (aggregated - means[:, None]).square().sum(dim=(1, 2)) / (config.draws - 1)  # (A,)
        scales = means @ mu / config.grad_norm**2  # (A,)
        for index, (name, aggregator, alpha) in enumerate(names):
            closed = closed_form_moments(
                aggregator,
                lengths,
                config.token_variance,
                config.max_response_length,
                alpha=alpha,
                grad_norm=config.grad_norm,
            )
            scale, variance = float(scales[index]), float(variances[index])
            entry = sums[name]
            entry["expectation_scale"] += scale
            entry["variance"] += variance
            entry["cv"] += variance**0.5 / (abs(scale) * config.grad_norm)
            entry["expectation_scale_closed_form"] += closed.expectation_scale
            entry["variance_closed_form"] += closed.variance
            entry["cv_closed_form"] += closed.cv
    rows = [
        {"aggregator": name, **{key: value / config.batches for key, value in sums[name].items()}}
        for name, _, _ in names
    ]
    return pd.DataFrame(rows, columns=list(SYNTHETIC_COLUMNS))


def plot_synthetic(results: pd.DataFrame, title: str, path) -> None:
    """Three log-scale panels (expectation scale, variance, CV): Monte Carlo circles and closed-form crosses."""
    figure = Figure(figsize=(12, 4), layout="constrained")
    positions = range(len(results))
    for column, (quantity, label) in enumerate((("expectation_scale", "E ĝ / μ"), ("variance", "Var ĝ"), ("cv", "CV"))):
        axes = figure.add_subplot(1, 3, column + 1)
        axes.scatter(positions, results[quantity], s=60, facecolors="none", edgecolors="tab:blue", label="Monte Carlo")
        axes.scatter(
            positions, results[f"{quantity}_closed_form"], color="black", marker="x", zorder=3, label="closed form"
        )
        axes.set_xticks(list(positions), results["aggregator"], rotation=45, ha="right", fontsize="small")
        axes.set_yscale("log")
        axes.set_title(label)
        axes.grid(alpha=0.3, axis="y")
        if column == 0:
            axes.legend(fontsize="small")
    figure.suptitle(title)
    figure.savefig(path, dpi=120)
