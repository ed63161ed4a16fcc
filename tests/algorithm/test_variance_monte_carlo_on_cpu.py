"""Monte Carlo check of the bias/variance theory: with per-response gradients g_i ~ N(μ, V·L_i·I) (the paper's
model, variance linear in length), each aggregator's empirical expectation scale, variance and CV match the Table 1
closed forms, and ΔL at α=1 has the lowest variance among unbiased linear combinations (Σ x_i = 1/M).

Tolerances come from the sample size. With N draws of a d-dimensional ĝ (N·d independent coordinates):
- the empirical scale ĉ = <mean ĝ, μ>/||μ||² has standard error c·CV/sqrt(N);
- the per-coordinate variance averaged over d coordinates has relative standard error sqrt(2/(N·d)).
Each check allows 5 standard errors (a chance failure rate below 1e-6 per check), and the draws are seeded.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deltal.algorithm import AGGREGATORS, aggregation_coefficients, closed_form_moments, linear_combination_moments

NUM_DRAWS = 40_000  # N
GRAD_DIM = 8  # d
TOKEN_VARIANCE = 1.0  # V
GRAD_NORM = 5.0  # ||μ||
MAX_LENGTH = 2048  # M
LENGTHS = torch.tensor([2.0, 5.0, 10.0, 40.0, 100.0, 300.0, 800.0, 2000.0], dtype=torch.float64)  # (G,)
STANDARD_ERRORS_ALLOWED = 5.0


@pytest.fixture(scope="module")
def gradient_draws() -> tuple[torch.Tensor, torch.Tensor]:
    """N draws of the G per-response gradients, (N, G, d), and the true gradient μ, (d,)."""
    generator = torch.Generator().manual_seed(2509)
    direction = torch.randn(GRAD_DIM, generator=generator, dtype=torch.float64)
    true_gradient = GRAD_NORM * direction / direction.norm()  # (d,)
    noise = torch.randn(NUM_DRAWS, len(LENGTHS), GRAD_DIM, generator=generator, dtype=torch.float64)
    noise_scale = (TOKEN_VARIANCE * LENGTHS).sqrt()[None, :, None]  # (1, G, 1): Var(g_i) = V·L_i per coordinate
    return true_gradient + noise_scale * noise, true_gradient


def empirical_scale_and_variance(
    combined: torch.Tensor, true_gradient: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Empirical c (E ĝ = c μ) and per-coordinate variance of ĝ; combined is (N, ..., d), results are (...)."""
    scale = combined.mean(dim=0) @ true_gradient / true_gradient.square().sum()
    variance = combined.var(dim=0).mean(dim=-1)
    return scale, variance


def combine(draws: torch.Tensor, coefficients: torch.Tensor) -> torch.Tensor:
    """ĝ = Σ_i x_i g_i for each draw and each coefficient vector: (N, G, d) x (K, G) -> (N, K, d)."""
    return torch.einsum("ngd,kg->nkd", draws, coefficients)


@pytest.mark.parametrize(
    ("aggregator", "alpha"),
    [(name, 1.0) for name in AGGREGATORS] + [("delta_l", 0.5), ("delta_l", 0.75), ("delta_l", 0.0)],
)
def test_empirical_moments_match_the_closed_forms(gradient_draws, aggregator, alpha):
    draws, true_gradient = gradient_draws
    coefficients = aggregation_coefficients(aggregator, LENGTHS, MAX_LENGTH, alpha=alpha)
    scale, variance = empirical_scale_and_variance(combine(draws, coefficients[None]), true_gradient)
    empirical_cv = variance.sqrt() / (scale.abs() * GRAD_NORM)
    expected = closed_form_moments(aggregator, LENGTHS, TOKEN_VARIANCE, MAX_LENGTH, alpha=alpha, grad_norm=GRAD_NORM)

    scale_error = expected.expectation_scale * expected.cv / math.sqrt(NUM_DRAWS)
    variance_relative_error = math.sqrt(2 / (NUM_DRAWS * GRAD_DIM))
    # CV = sqrt(variance)/scale: relative errors add in quadrature (half the variance's, all of the scale's)
    cv_relative_error = math.hypot(variance_relative_error / 2, expected.cv / math.sqrt(NUM_DRAWS))
    assert scale.item() == pytest.approx(expected.expectation_scale, abs=STANDARD_ERRORS_ALLOWED * scale_error)
    assert variance.item() == pytest.approx(expected.variance, rel=STANDARD_ERRORS_ALLOWED * variance_relative_error)
    assert empirical_cv.item() == pytest.approx(expected.cv, rel=STANDARD_ERRORS_ALLOWED * cv_relative_error)


def test_delta_l_at_alpha_one_has_the_lowest_empirical_variance_among_unbiased_combinations(gradient_draws):
    draws, true_gradient = gradient_draws
    generator = torch.Generator().manual_seed(7)
    named = {
        "dr_grpo_norm": aggregation_coefficients("dr_grpo_norm", LENGTHS, MAX_LENGTH),
        "delta_l(0.5)": aggregation_coefficients("delta_l", LENGTHS, MAX_LENGTH, alpha=0.5),
        "delta_l(0.75)": aggregation_coefficients("delta_l", LENGTHS, MAX_LENGTH, alpha=0.75),
    }
    # random unbiased competitors: positive Dirichlet-like vectors rescaled to sum to 1/M
    random_weights = -torch.rand(20, len(LENGTHS), generator=generator, dtype=torch.float64).log()  # (K, G)
    random_coefficients = random_weights / (MAX_LENGTH * random_weights.sum(dim=1, keepdim=True))
    optimal = aggregation_coefficients("delta_l", LENGTHS, MAX_LENGTH, alpha=1.0)
    competitors = torch.cat([torch.stack(list(named.values())), random_coefficients])  # (K, G)

    scales, variances = empirical_scale_and_variance(
        combine(draws, torch.cat([optimal[None], competitors])), true_gradient
    )
    # every competitor is unbiased: its empirical scale is 1/M within 5 standard errors of the worst CV among them
    worst_cv = max(linear_combination_moments(x, LENGTHS, TOKEN_VARIANCE, GRAD_NORM).cv for x in competitors)
    scale_tolerance = STANDARD_ERRORS_ALLOWED * worst_cv / math.sqrt(NUM_DRAWS) / MAX_LENGTH
    torch.testing.assert_close(scales, torch.full_like(scales, 1 / MAX_LENGTH), atol=scale_tolerance, rtol=0.0)
    names = ["delta_l(1)", *named, *[f"random[{k}]" for k in range(len(random_coefficients))]]
    lowest = names[int(variances.argmin())]
    assert lowest == "delta_l(1)", dict(zip(names, variances.tolist(), strict=True))


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=MAX_LENGTH), min_size=2, max_size=16),
    perturbation_seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_no_unbiased_combination_has_lower_theoretical_variance_than_delta_l_at_alpha_one(lengths, perturbation_seed):
    # Any unbiased x is x* + δ with Σδ = 0 (δ may have negative entries); the generic variance can only grow.
    batch = torch.tensor(lengths, dtype=torch.float64)
    optimal = aggregation_coefficients("delta_l", batch, MAX_LENGTH, alpha=1.0)
    generator = torch.Generator().manual_seed(perturbation_seed)
    perturbation = torch.randn(len(lengths), generator=generator, dtype=torch.float64) / MAX_LENGTH
    perturbation -= perturbation.mean()
    best = linear_combination_moments(optimal, batch, TOKEN_VARIANCE).variance
    other = linear_combination_moments(optimal + perturbation, batch, TOKEN_VARIANCE).variance
    assert other >= best * (1 - 1e-12)
