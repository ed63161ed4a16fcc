"""The batch variance lab: balanced pools (as many correct as wrong responses, so every advantage is ±1), prompts
that cannot be balanced skipped, resampled batches that take whole groups from one prompt's pool each, squared
deviations from each prompt's own mean gradient, and the CLI's four files with a CV per aggregator and the Dr. GRPO
Norm / ΔL ratio, on the quickstart's tiny Qwen2 (built offline) with a stand-in sampler and reward."""

import json
import math

import pandas as pd
import pytest
import torch

from deltal.analysis import variance_batch
from deltal.analysis.variance import main
from deltal.cpu.assets import build_tiny_assets
from deltal.data import countdown_trace

PER_SIDE = 3


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_assets(tmp_path_factory.mktemp("assets") / "tiny", seed=0)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return countdown_trace.build(tmp_path_factory.mktemp("data"), train_size=4, test_size=6, seed=1)[1]


@pytest.fixture
def stand_ins(monkeypatch):
    """A sampler of EOS-ended responses of 2..12 tokens and a reward that is 1 for an odd number of tokens."""
    generator = torch.Generator().manual_seed(7)

    def sample(model, tokenizer, prompt_ids, count, max_new_tokens, temperature, batch_size):
        lengths = torch.randint(2, 13, (count,), generator=generator).tolist()
        body = [torch.randint(5, 200, (length - 1,), generator=generator) for length in lengths]
        return [torch.cat([tokens, torch.tensor([tokenizer.eos_token_id])]) for tokens in body]

    def reward(data_source, text, truth, **kwargs):
        # The tokenizer is byte-level: an odd character count stands in for a correct answer.
        return {"score": float(len(text) % 2)}

    monkeypatch.setattr(variance_batch, "sample_continuations", sample)
    monkeypatch.setattr("deltal.rewards.compute_score", reward)


def test_batches_take_whole_groups_from_one_prompts_pool_each():
    config = variance_batch.BatchLabConfig(batch_prompts=3, group_size=4, resamples=50, seed=2)
    sizes = [6, 6, 4]
    picks = variance_batch.batch_picks(sizes, config)
    assert picks.shape == (50, 12)
    starts = [0, 6, 12]
    for batch in picks:
        for group in batch.reshape(3, 4):
            pool = next(index for index, start in enumerate(starts) if start <= group[0] < start + sizes[index])
            assert all(starts[pool] <= int(row) < starts[pool] + sizes[pool] for row in group)


def test_deviations_are_taken_from_each_prompts_own_mean():
    gradients = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 10.0], [0.0, 14.0]])
    deviations = variance_batch.prompt_deviations(gradients, [2, 2])
    # Against one global mean the first prompt's rows would be ~78 away; against their own mean they are 1 away.
    assert deviations.tolist() == pytest.approx([1.0, 1.0, 4.0, 4.0])


def test_cli_writes_balanced_pools_and_a_cv_per_aggregator(tiny_model_dir, data_file, stand_ins, tmp_path):
    out = tmp_path / "lab"
    flags = ["--num-prompts", "3", "--per-side", str(PER_SIDE), "--max-samples", "32", "--max-new-tokens", "16"]
    flags += ["--batch-prompts", "2", "--group-size", "4", "--resamples", "40", "--gen-batch-size", "8"]
    assert main(["batch", "--model", str(tiny_model_dir), "--data", str(data_file), *flags, "--out", str(out)]) == 0
    responses = pd.read_csv(out / "responses.csv")
    assert responses.groupby("prompt")["reward"].agg(["sum", "count"]).values.tolist() == [[PER_SIDE, 2 * PER_SIDE]] * 3
    assert set(responses["advantage"]) == {1.0, -1.0}
    assert ((responses["advantage"] > 0) == (responses["reward"] > 0)).all()
    assert responses["sq_deviation"].map(math.isfinite).all() and (responses["sq_deviation"] > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts_kept"] == 3 and summary["num_responses"] == 6 * PER_SIDE
    assert summary["num_params"] == sum(
        parameter.numel()
        for parameter in variance_batch.load_model_and_tokenizer(
            variance_batch.ModelLabConfig(model=str(tiny_model_dir))
        )[0].parameters()
    )
    aggregators = pd.read_csv(out / "aggregators.csv")
    assert {"grpo_norm", "dapo_norm", "dr_grpo_norm", "delta_l_alpha_1"} <= set(aggregators["aggregator"])
    assert aggregators["cv"].map(math.isfinite).all() and aggregators["cv_closed_form"].map(math.isfinite).all()
    cv = dict(zip(aggregators["aggregator"], aggregators["cv"], strict=True))
    assert summary["cv_ratio_dr_grpo_norm_to_delta_l"] == pytest.approx(cv["dr_grpo_norm"] / cv["delta_l_alpha_1"])
    assert (out / "variance_vs_length.png").read_bytes()[:4] == b"\x89PNG"


def test_partial_credit_does_not_count_as_correct(tiny_model_dir, data_file, stand_ins, monkeypatch):
    def partial(data_source, text, truth, **kwargs):
        return {"score": 0.5, "acc": float(len(text) % 2)}

    monkeypatch.setattr("deltal.rewards.compute_score", partial)
    config = variance_batch.BatchLabConfig(
        model=str(tiny_model_dir), data=str(data_file), num_prompts=2, per_side=2, max_samples=32, resamples=10
    )
    per_response, _, _ = variance_batch.run_batch_lab(config)
    assert per_response.groupby("prompt")["reward"].sum().tolist() == [2.0, 2.0]


def test_a_fixed_set_of_prompts_is_measured_in_the_order_given(tiny_model_dir, data_file, stand_ins):
    config = variance_batch.BatchLabConfig(
        model=str(tiny_model_dir),
        data=str(data_file),
        num_prompts=2,
        prompt_indices=(4, 1, 3),
        per_side=2,
        max_samples=32,
        max_new_tokens=16,
        resamples=10,
    )
    per_response, _, summary = variance_batch.run_batch_lab(config)
    assert per_response["prompt"].unique().tolist() == [4, 1] and summary["prompts_kept"] == 2
    with pytest.raises(ValueError, match="--prompt-indices must lie in 0..5"):
        variance_batch.run_batch_lab(variance_batch.BatchLabConfig(**{**config.__dict__, "prompt_indices": (9,)}))


def test_prompts_that_cannot_be_balanced_are_skipped_and_too_few_is_an_error(
    tiny_model_dir, data_file, stand_ins, monkeypatch
):
    monkeypatch.setattr("deltal.rewards.compute_score", lambda data_source, text, truth, **kwargs: {"score": 0.0})
    config = variance_batch.BatchLabConfig(
        model=str(tiny_model_dir), data=str(data_file), per_side=2, max_samples=8, max_new_tokens=16
    )
    with pytest.raises(ValueError, match="only 0 of 6 prompts got 2 correct and wrong responses within 8 samples"):
        variance_batch.run_batch_lab(config)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model": None}, "--model and --data are required"),
        ({"per_side": 1}, "--per-side must be >= 2"),
        ({"max_samples": 3}, "--max-samples must be >= 2"),
        ({"resamples": 1}, "--resamples >= 2"),
    ],
)
def test_settings_no_measurement_can_use_name_the_flag(changes, message):
    config = variance_batch.BatchLabConfig(**{"model": "m", "data": "d", **changes})
    with pytest.raises(ValueError, match=message):
        variance_batch.check_config(config)
