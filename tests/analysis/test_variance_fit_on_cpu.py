"""α from measurement: the log-log fit of per-response gradient variance against length recovers a known exponent
β ∈ {0.5, 1, 1.5} from synthetic gradients (through the lab's own squared deviations from the mean gradient), its
confidence interval covers β, the correction for the noise in the mean gradient is what makes it unbiased, the
Student-t quantiles are right, and the printed suggestion is the exact override line."""

import math

import pytest
import torch

from deltal.analysis.variance_fit import (
    PowerLawFit,
    alpha_override,
    corrected_variances,
    describe_fit,
    fit_power_law,
    student_t_quantile,
)
from deltal.analysis.variance_model import squared_deviations

NUM_RESPONSES = 256
GRAD_DIM = 512  # large d concentrates ||ḡ − μ||² near its mean, as the millions of parameters of a real model do


def synthetic_deviations(beta: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lengths log-uniform in [16, 1024] and ||g_i − ḡ||² for g_i ~ N(μ, (L_i^β / d)·I_d), so Var(g_i) = L_i^β."""
    generator = torch.Generator().manual_seed(seed)
    log_lengths = torch.empty(NUM_RESPONSES, dtype=torch.float64).uniform_(
        math.log(8), math.log(2048), generator=generator
    )
    lengths = log_lengths.exp().round()
    mu = torch.randn(GRAD_DIM, generator=generator, dtype=torch.float64)
    noise = torch.randn(NUM_RESPONSES, GRAD_DIM, generator=generator, dtype=torch.float64)
    gradients = mu + noise * (lengths**beta / GRAD_DIM).sqrt()[:, None]  # (N, d)
    return lengths, squared_deviations(gradients)


@pytest.mark.parametrize("beta", [0.5, 1.0, 1.5])
def test_fit_recovers_a_known_exponent_and_its_interval_covers_it(beta):
    lengths, deviations = synthetic_deviations(beta, seed=3)
    fit = fit_power_law(lengths, corrected_variances(deviations))
    assert fit.exponent == pytest.approx(beta, abs=0.03)
    assert fit.exponent_low < beta < fit.exponent_high
    assert fit.exponent_high - fit.exponent_low < 0.1
    assert fit.num_points + fit.num_dropped == NUM_RESPONSES
    assert alpha_override(fit) == f"algorithm.grpopp_config.alpha={beta:.2f}"


def test_uncorrected_deviations_bias_the_exponent_low():
    # ḡ's own noise adds Σ Var/N² to every d_i, which matters most for short responses
    lengths, deviations = synthetic_deviations(1.5, seed=3)
    assert fit_power_law(lengths, deviations).exponent < 1.42


def test_corrected_variances_are_unbiased_for_independent_responses():
    # E d_i = (1 − 2/N) v_i + S/N²; v = [1, 2, 3, 6] (S = 12, N = 4): E d = [1.25, 1.75, 2.25, 3.75]
    expected_deviations = torch.tensor([1.25, 1.75, 2.25, 3.75], dtype=torch.float64)
    torch.testing.assert_close(corrected_variances(expected_deviations), torch.tensor([1.0, 2.0, 3.0, 6.0]).double())


def test_an_exact_power_law_fits_with_r2_one():
    lengths = torch.tensor([1.0, 2.0, 4.0, 8.0])
    fit = fit_power_law(lengths, 3.0 * lengths**0.75)
    assert (fit.exponent, fit.prefactor, fit.r2) == pytest.approx((0.75, 3.0, 1.0))
    assert fit.exponent_low == pytest.approx(0.75) and fit.exponent_high == pytest.approx(0.75)


def test_a_negative_exponent_suggests_alpha_zero():
    fit = fit_power_law(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([4.0, 2.0, 1.0]))
    assert fit.exponent == pytest.approx(-1.0)
    assert alpha_override(fit) == "algorithm.grpopp_config.alpha=0.00"


@pytest.mark.parametrize(
    ("probability", "dof", "tabulated"),
    [(0.975, 1, 12.7062), (0.975, 3, 3.1824), (0.975, 10, 2.2281), (0.975, 30, 2.0423), (0.95, 5, 2.0150)],
)
def test_student_t_quantiles_match_tables(probability, dof, tabulated):
    assert student_t_quantile(probability, dof) == pytest.approx(tabulated, abs=1e-4)


def test_too_few_positive_estimates_or_one_length_name_the_fix():
    with pytest.raises(ValueError, match="--num-responses"):
        fit_power_law(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, -1.0, 2.0]))
    with pytest.raises(ValueError, match="--max-new-tokens"):
        fit_power_law(torch.tensor([5.0, 5.0, 5.0]), torch.tensor([1.0, 2.0, 3.0]))


def test_description_names_beta_interval_and_alpha():
    fit = PowerLawFit(0.8123, 0.7, 0.9, 0.95, 1.0, 0.5, 100, 2)
    line = describe_fit(fit)
    assert "β = 0.812" in line and "95% CI 0.700 .. 0.900" in line and "α = 0.81" in line and "2 dropped" in line
