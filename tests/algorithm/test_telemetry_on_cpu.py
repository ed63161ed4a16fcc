"""Variance/bias telemetry of an aggregation on one batch's lengths: hand-computed CV and scale ratios, ΔL(α=1)
giving exactly 1, every ratio >= 1, and agreement with a Monte Carlo of the paper's model (g_i ~ N(μ, V·L_i·I))
for every paper aggregator, ΔL at α = 0.5, and group-scope ΔL (which stays unbiased).

Monte Carlo tolerance: N draws of d-dimensional ĝ estimate a variance with relative standard error sqrt(2/(N·d)),
about 0.5% here, so a CV (its square root) to about 0.25% and a ratio of two CVs to about 0.4%; we allow 3%. The
empirical CV divides by the empirical scale, whose relative standard error is CV/sqrt(N·d) for ||μ|| = 1; ||μ|| = 50
makes that negligible (the CV ratio itself does not depend on ||μ||).
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deltal.algorithm import AGGREGATORS, aggregation_coefficients
from deltal.algorithm.telemetry import aggregation_cost, batch_costs, method_coefficients

MAX_LENGTH = 4096
NUM_DRAWS = 20_000
GRAD_DIM = 4
GRAD_NORM = 50.0
LENGTHS = torch.tensor([3.0, 12.0, 40.0, 90.0, 700.0, 2500.0], dtype=torch.float64)
GROUP_IDS = torch.tensor([0, 1, 0, 1, 0, 1])


def test_hand_computed_ratios_on_two_responses():
    # L = [1, 4], M = 4. ΔL(α=1): CV = 1/sqrt(Σ 1/L) = 1/sqrt(1.25).
    # Dr. GRPO / DAPO (equal x): CV = sqrt(Σ L)/G = sqrt(5)/2 -> ratio sqrt(5)/2 · sqrt(1.25) = 1.25.
    # GRPO (x ∝ 1/L, like ΔL(α=1) for these lengths): ratio 1; scale M·mean(1/L) = 4 · 5/8 = 2.5.
    # DAPO scale: M·G/ΣL = 4·2/5 = 1.6; Dr. GRPO scale: 1.
    lengths = torch.tensor([1.0, 4.0])
    _, costs = batch_costs("delta_l", lengths, max_response_length=4)
    assert costs["dr_grpo_norm"].cv_ratio == pytest.approx(1.25)
    assert costs["dapo_norm"].cv_ratio == pytest.approx(1.25)
    assert costs["grpo_norm"].cv_ratio == pytest.approx(1.0)
    assert costs["grpo_norm"].scale_ratio == pytest.approx(2.5)
    assert costs["dapo_norm"].scale_ratio == pytest.approx(1.6)
    assert costs["dr_grpo_norm"].scale_ratio == pytest.approx(1.0)


def test_delta_l_at_alpha_one_has_ratio_exactly_one():
    running, costs = batch_costs("delta_l", LENGTHS, MAX_LENGTH, alpha=1.0)
    assert running.cv_ratio == 1.0
    assert costs["delta_l"].cv_ratio == 1.0
    assert running.scale_ratio == pytest.approx(1.0, rel=1e-12)


def test_grpo_and_dapo_scale_shrinks_as_responses_grow():
    short = batch_costs("grpo_norm", torch.tensor([10.0, 20.0, 30.0]), MAX_LENGTH)[1]
    long = batch_costs("grpo_norm", torch.tensor([1000.0, 2000.0, 3000.0]), MAX_LENGTH)[1]
    for name in ("grpo_norm", "dapo_norm"):
        assert long[name].scale_ratio == pytest.approx(short[name].scale_ratio / 100)
    assert long["dr_grpo_norm"].scale_ratio == pytest.approx(1.0)


def test_rows_of_length_zero_are_not_responses():
    padded = torch.tensor([0.0, 1.0, 0.0, 4.0])
    _, with_padding = batch_costs("dr_grpo_norm", padded, 4)
    _, without = batch_costs("dr_grpo_norm", torch.tensor([1.0, 4.0]), 4)
    assert with_padding == without


def test_cost_needs_a_response():
    with pytest.raises(ValueError, match="at least one response"):
        aggregation_cost(torch.zeros(2), torch.zeros(2), 4)


def test_group_scope_exists_only_for_delta_l():
    with pytest.raises(ValueError, match="only exists for delta_l"):
        method_coefficients("grpo_norm", LENGTHS, MAX_LENGTH, group_ids=GROUP_IDS)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=MAX_LENGTH), min_size=1, max_size=32).filter(any),
    st.sampled_from(AGGREGATORS),
    st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
    st.booleans(),
)
def test_no_aggregation_beats_delta_l_at_alpha_one(lengths, aggregator, alpha, grouped):
    lengths = torch.tensor(lengths, dtype=torch.float64)
    group_ids = torch.arange(lengths.numel()) % 3 if grouped and aggregator == "delta_l" else None
    running, costs = batch_costs(aggregator, lengths, MAX_LENGTH, alpha, group_ids)
    assert running.cv_ratio >= 1.0 - 1e-12
    assert all(cost.cv_ratio >= 1.0 - 1e-12 for cost in costs.values())


@pytest.fixture(scope="module")
def gradient_draws() -> tuple[torch.Tensor, torch.Tensor]:
    """N draws of the G gradients g_i ~ N(μ, (L_i/d)·I_d), so E||g_i − μ||² = L_i: (N, G, d), and μ: (d,)."""
    generator = torch.Generator().manual_seed(7)
    mu = torch.randn(GRAD_DIM, generator=generator, dtype=torch.float64)
    mu = GRAD_NORM * mu / mu.norm()
    noise = torch.randn(NUM_DRAWS, LENGTHS.numel(), GRAD_DIM, generator=generator, dtype=torch.float64)
    return mu + noise * (LENGTHS / GRAD_DIM).sqrt()[None, :, None], mu


def monte_carlo_cv_and_scale(coefficients: torch.Tensor, draws: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, ...]:
    """Empirical CV (in units of ||μ|| = 1) and scale c (E ĝ = c μ) of ĝ = Σ x_i g_i."""
    gradients, mu = draws
    combined = torch.einsum("g,ngd->nd", coefficients, gradients)  # (N, d)
    scale = float(combined.mean(dim=0) @ mu) / GRAD_NORM**2
    variance = float(combined.var(dim=0).sum())
    return math.sqrt(variance) / abs(scale), scale


@pytest.mark.parametrize(
    ("aggregator", "alpha", "grouped"),
    [(name, 1.0, False) for name in AGGREGATORS] + [("delta_l", 0.5, False), ("delta_l", 0.75, True)],
)
def test_ratios_match_a_monte_carlo_of_the_paper_model(aggregator, alpha, grouped, gradient_draws):
    group_ids = GROUP_IDS if grouped else None
    coefficients = method_coefficients(aggregator, LENGTHS, MAX_LENGTH, alpha, group_ids)
    running, _ = batch_costs(aggregator, LENGTHS, MAX_LENGTH, alpha, group_ids)
    cv, scale = monte_carlo_cv_and_scale(coefficients, gradient_draws)
    optimal = aggregation_coefficients("delta_l", LENGTHS, MAX_LENGTH, 1.0)
    optimal_cv, _ = monte_carlo_cv_and_scale(optimal, gradient_draws)
    assert cv / optimal_cv == pytest.approx(running.cv_ratio, rel=0.03)
    # ĝ·μ/||μ||² has standard deviation sqrt(Σ x² L / d)/||μ|| = c·cv/(||μ||·sqrt(d)): allow 5 standard errors
    standard_error = cv / (GRAD_NORM * math.sqrt(GRAD_DIM * NUM_DRAWS))
    assert scale * MAX_LENGTH == pytest.approx(running.scale_ratio, rel=5 * standard_error)
    if aggregator == "delta_l":  # unbiased in either scope: E ĝ = μ/M
        assert running.scale_ratio == pytest.approx(1.0, rel=1e-12)
