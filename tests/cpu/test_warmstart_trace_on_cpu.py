"""Warm-start data of the countdown_trace task: each example is the chat prompt plus the whole trace and answer, only
the response is supervised, every response fits the token budget with its EOS, length buckets keep batches of
similar lengths, sampling reports lengths, truncation (scored 0) and the p10/p50/p90 spread, and the figures give the
accuracy under both trace rewards and the full-trace accuracy per depth bucket."""

import random

import pytest
import torch

from deltal.cpu.warmstart_trace import (
    TRACE_SPEC,
    _batch,
    build_trace_assets,
    length_buckets,
    length_percentiles,
    prompt_ids,
    sample_and_score,
    sample_figures,
    training_pool,
)
from deltal.data import countdown_trace


@pytest.fixture(scope="module")
def trace_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = build_trace_assets(tmp_path_factory.mktemp("trace") / "tiny", seed=0)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_the_model_has_room_for_the_longest_trace(trace_model):
    model, tokenizer = trace_model
    assert model.config.max_position_embeddings == TRACE_SPEC.max_position_embeddings == 512
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Use 3 5 7 to make 56."}], tokenize=False, add_generation_prompt=True
    )
    assert prompt_ids(tokenizer, (3, 5, 7), 56) == tokenizer.encode(text, add_special_tokens=False)


def test_pool_examples_are_prompt_plus_trace_and_eos_within_the_budget(trace_model):
    _, tokenizer = trace_model
    held_out = [((3, 5, 7), 56)]
    pool = training_pool(tokenizer, 60, random.Random(0), held_out, max_response_length=120)
    assert len(pool) == 60
    for _prompt, response in pool:
        assert response[-1] == tokenizer.eos_token_id and len(response) < 120
        text = tokenizer.decode(response, skip_special_tokens=True)
        assert text.endswith("</answer>") and "\n<answer>" in text
    prompts = {tuple(prompt) for prompt, _ in pool}
    assert tuple(prompt_ids(tokenizer, (3, 5, 7), 56)) not in prompts

    input_ids, attention_mask, labels = _batch(tokenizer.pad_token_id, pool, 8, random.Random(1))
    for row in range(8):
        supervised = labels[row][labels[row] != -100]
        assert supervised[-1] == tokenizer.eos_token_id
        # Labels cover exactly the response: prompt tokens and padding are -100.
        length = int(attention_mask[row].sum())
        assert torch.equal(supervised, input_ids[row, length - supervised.numel() : length])


def test_buckets_group_similar_lengths_and_have_equal_size():
    pool = [([0] * 3, [0] * length) for length in range(10, 110)]
    buckets = length_buckets(pool, 25)
    assert [len(bucket) for bucket in buckets] == [25, 25, 25, 25]
    assert max(len(r) for _, r in buckets[0]) < min(len(r) for _, r in buckets[1])
    with pytest.raises(ValueError, match="fewer than one bucket"):
        length_buckets(pool[:3], 25)


def test_sampling_reports_lengths_and_scores_truncation_zero(trace_model):
    model, tokenizer = trace_model
    problems = [((3, 5, 7), 56), ((2, 9, 3), 3), ((1, 1, 2), 4)]
    samples = sample_and_score(model, tokenizer, problems, max_new_tokens=6, seed=0)
    assert len(samples) == 3
    for sample in samples:
        assert 1 <= sample["length"] <= 6
        if sample["truncated"]:
            assert sample["length"] == 6 and sample["score"] == 0.0 and sample["reason"] == "truncated"
            assert sample["full_score"] == 0.0 and sample["full_reason"] == "truncated"
    assert [sample["depth"] for sample in samples] == [countdown_trace.depth(*problem) for problem in problems]


def test_figures_hold_both_rewards_and_the_full_trace_accuracy_by_depth():
    def sample(depth, score, full_score, length):
        return {"depth": depth, "score": score, "full_score": full_score, "length": length, "truncated": False}

    samples = [sample(1, 1.0, 1.0, 20), sample(1, 1.0, 0.0, 22), sample(5, 1.0, 0.0, 80), sample(20, 0.0, 0.0, 300)]
    figures = sample_figures(samples)
    assert figures["accuracy_t1"] == 0.75 and figures["accuracy_t1_full_trace"] == 0.25
    assert figures["accuracy_t1_full_trace_by_depth"] == {"1-1": 0.5, "4-7": 0.0, "16-28": 0.0}
    assert figures["truncated_fraction_t1"] == 0.0 and figures["length_t1"]["max"] == 300


def test_length_percentiles():
    spread = length_percentiles(list(range(1, 101)))
    assert spread["p50"] == pytest.approx(50.5) and spread["p10"] == pytest.approx(10.9)
    assert spread["p90_over_p10"] == pytest.approx(90.1 / 10.9)
    assert countdown_trace.DEFAULT_MAX_DEPTH == 28


def test_evaluate_only_without_a_model_or_problems_names_what_it_needs(tmp_path, capsys):
    from deltal.cpu.warmstart_trace import main

    assert main(["--assets", str(tmp_path / "a"), "--out", str(tmp_path / "none"), "--evaluate-only"]) == 2
    assert "--evaluate-only needs --out (a saved model) and --exclude-parquet" in capsys.readouterr().err
