"""The real-model variance lab computes one correct gradient per response and fits variance against length.

Properties checked on the CPU quickstart's tiny Qwen2 (built offline): the CLI writes one CSV row per sampled response
with finite squared deviations, a summary with the linear and power-law fits (and the α override the latter
suggests) and per-aggregator CVs, and a PNG; each response gets exactly
one gradient over the default last-layer q/k/v weights, equal to ∇ Σ log π of that response; the Gram-matrix moments
equal a direct computation over explicit resampled groups; the fit recovers a known line; a regex that matches
nothing, or responses of a single length, raise errors that name the fix.
"""

import json
import math

import pandas as pd
import pytest
import torch

from deltal.algorithm import aggregation_coefficients
from deltal.analysis.variance import main
from deltal.analysis.variance_fit import alpha_override, fit_power_law
from deltal.analysis.variance_model import (
    ModelLabConfig,
    aggregator_moments,
    default_param_pattern,
    linear_fit,
    load_model_and_tokenizer,
    model_label,
    response_gradients,
    sample_responses,
    select_parameters,
    squared_deviations,
)

NUM_RESPONSES = 8


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_assets):
    return tiny_assets  # the session's build (tests/conftest.py)


@pytest.fixture(scope="module")
def lab_output(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    flags = ["--num-responses", str(NUM_RESPONSES), "--group-size", "4", "--resamples", "50", "--seed", "1"]
    assert main(["model", "--model", str(tiny_model_dir), *flags, "--out", str(out)]) == 0
    return out


def test_cli_writes_one_finite_row_per_response(lab_output):
    responses = pd.read_csv(lab_output / "responses.csv")
    assert len(responses) == NUM_RESPONSES
    assert {"length", "sq_deviation"} <= set(responses.columns)
    assert responses["sq_deviation"].map(math.isfinite).all() and (responses["sq_deviation"] >= 0).all()
    assert (responses["length"] >= 1).all()
    assert (lab_output / "variance_vs_length.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_holds_the_fit_and_a_cv_per_aggregator(lab_output):
    summary = json.loads((lab_output / "summary.json").read_text())
    responses = pd.read_csv(lab_output / "responses.csv")
    refit = linear_fit(torch.tensor(responses["length"].values), torch.tensor(responses["sq_deviation"].values))
    assert summary["slope"] == pytest.approx(refit.slope) and summary["r2"] == pytest.approx(refit.r2)
    assert 0.0 <= summary["r2"] <= 1.0
    assert summary["param_names"] == [f"model.layers.1.self_attn.{name}_proj.weight" for name in "qkv"]
    aggregators = pd.read_csv(lab_output / "aggregators.csv")
    assert aggregators["aggregator"].tolist() == list(summary["cv"])
    assert aggregators["cv"].map(math.isfinite).all() and (aggregators["cv"] > 0).all()


def test_summary_holds_the_power_law_fit_and_the_override_it_suggests(lab_output):
    summary = json.loads((lab_output / "summary.json").read_text())
    responses = pd.read_csv(lab_output / "responses.csv")
    refit = fit_power_law(torch.tensor(responses["length"].values), torch.tensor(responses["variance_estimate"].values))
    assert summary["power_law"]["exponent"] == pytest.approx(refit.exponent)
    assert summary["power_law"]["exponent_low"] <= refit.exponent <= summary["power_law"]["exponent_high"]
    assert summary["alpha_override"] == alpha_override(refit)


def test_each_response_gets_its_own_log_prob_gradient(tiny_model_dir):
    config = ModelLabConfig(model=str(tiny_model_dir), num_responses=3, max_new_tokens=12, seed=2)
    model, tokenizer, _ = load_model_and_tokenizer(config)
    parameters = select_parameters(model, default_param_pattern(model))
    responses = sample_responses(model, tokenizer, config)
    gradients = response_gradients(model, parameters, responses, [1.0, -2.0, 0.5], temperature=1.0)
    assert gradients.shape == (3, sum(parameter.numel() for parameter in parameters.values()))
    assert torch.isfinite(gradients).all()
    # Recompute response 1 by hand: its gradient is -2 · ∇ Σ_t log π(y_t).
    sequence = torch.cat([responses.prompt_ids, responses.tokens[1]])[None]
    logits = model(input_ids=sequence).logits[0, responses.prompt_ids.numel() - 1 : -1]
    log_prob = torch.log_softmax(logits, -1).gather(1, responses.tokens[1][:, None]).sum()
    expected = torch.autograd.grad(-2.0 * log_prob, list(parameters.values()))
    torch.testing.assert_close(gradients[1], torch.cat([grad.reshape(-1) for grad in expected]))


def test_gram_moments_equal_explicit_resampled_groups():
    torch.manual_seed(0)
    gradients = torch.randn(6, 5, dtype=torch.float64)  # (N, P)
    lengths = torch.tensor([3.0, 10.0, 4.0, 20.0, 7.0, 1.0], dtype=torch.float64)
    config = ModelLabConfig(group_size=3, resamples=40, alphas=(1.0,), seed=5)
    moments = aggregator_moments(gradients @ gradients.T, lengths, 1.0, config, max_response_length=20)
    picks = torch.randint(0, 6, (40, 3), generator=torch.Generator().manual_seed(5))
    for aggregator, row in zip(("grpo_norm", "delta_l"), (moments.iloc[0], moments.iloc[3]), strict=True):
        aggregated = torch.stack(
            [aggregation_coefficients(aggregator, lengths[p], 20) @ gradients[p] for p in picks]
        )  # (R, P)
        centre = aggregated.mean(0)
        variance = (aggregated - centre).square().sum(1).mean()
        assert row["variance"] == pytest.approx(float(variance))
        assert row["cv"] == pytest.approx(float(variance.sqrt() / centre.norm()))


def test_squared_deviations_are_distances_to_the_mean_gradient():
    gradients = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]])
    assert squared_deviations(gradients).tolist() == pytest.approx([1 + 1, 1 + 1, 0 + 4])


def test_linear_fit_recovers_a_known_line():
    fit = linear_fit(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([5.0, 7.0, 11.0]))
    assert (fit.slope, fit.intercept, fit.r2) == pytest.approx((2.0, 3.0, 1.0))


def test_responses_of_one_length_cannot_be_fitted():
    with pytest.raises(ValueError, match="--max-new-tokens"):
        linear_fit(torch.tensor([5.0, 5.0, 5.0]), torch.tensor([1.0, 2.0, 3.0]))


def test_a_params_regex_matching_nothing_names_the_fix(tiny_model_dir):
    model, _, _ = load_model_and_tokenizer(ModelLabConfig(model=str(tiny_model_dir)))
    with pytest.raises(ValueError, match="fix the regex"):
        select_parameters(model, r"no_such_layer")


def test_a_verl_checkpoint_is_named_by_its_run_and_step_not_by_its_last_folder():
    checkpoint = "out/runs/countdown__delta_l__seed0/checkpoints/global_step_20/actor/huggingface"
    assert model_label(checkpoint) == "countdown__delta_l__seed0 global_step_20"
    assert model_label("/cache/assets/tiny-qwen2-trace-seed0-warm3000") == "tiny-qwen2-trace-seed0-warm3000"
    assert model_label("models/huggingface") == "models"  # a folder that only ends like a checkpoint
