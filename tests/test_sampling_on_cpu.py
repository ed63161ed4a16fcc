"""CPU rollout sampling: log-probs are those of the model, EOS ends a response, and the knobs are honoured.

Properties: batched, left-padded, KV-cached generation reports the same per-token log-probs as one full forward
pass of the unpadded sequence; a response stops at its first EOS and never exceeds its budget; temperature 0,
top_k=1 and a tiny top_p all reduce to the arg-max token; temperature reshapes the sampling distribution.
"""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deltal.sampling import SamplingSettings, generate_batch, sample_next_tokens


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_assets):
    model = AutoModelForCausalLM.from_pretrained(tiny_assets, attn_implementation="sdpa").eval()
    return model, AutoTokenizer.from_pretrained(tiny_assets)


def _prompt(tokenizer, text):
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer.encode(rendered, add_special_tokens=False)


def test_batched_log_probs_match_a_full_forward_of_each_sequence(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [_prompt(tokenizer, "Use 7 1 5 to make 35."), _prompt(tokenizer, "Use 10 2 3 to make 17, please now.")]
    generator = torch.Generator().manual_seed(0)
    responses = generate_batch(
        model, prompts, [10, 16], SamplingSettings(temperature=1.0), {tokenizer.eos_token_id}, 0, generator
    )
    for prompt, response in zip(prompts, responses, strict=True):
        assert all(math.isfinite(lp) and lp <= 0 for lp in response.log_probs)
        ids = torch.tensor([prompt + response.token_ids])
        with torch.no_grad():
            full = torch.log_softmax(model(ids).logits[0, len(prompt) - 1 : -1], dim=-1)
        expected = full.gather(-1, torch.tensor(response.token_ids)[:, None]).squeeze(-1)
        assert torch.allclose(expected, torch.tensor(response.log_probs), atol=1e-4)


def test_responses_stop_at_the_first_eos_and_respect_their_budget(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [_prompt(tokenizer, f"Use {i} 2 3 to make 9.") for i in range(1, 9)]
    # Make a frequent token an EOS as well, so some responses end early.
    eos_ids = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("Ġ"), tokenizer.convert_tokens_to_ids("1")}
    budgets = [3, 5, 8, 12, 12, 12, 12, 12]
    responses = generate_batch(
        model, prompts, budgets, SamplingSettings(1.0), eos_ids, 0, torch.Generator().manual_seed(1)
    )
    for response, budget in zip(responses, budgets, strict=True):
        assert 1 <= len(response.token_ids) <= budget
        assert not any(token in eos_ids for token in response.token_ids[:-1])
        assert response.finished_with_eos == (response.token_ids[-1] in eos_ids)
        if len(response.token_ids) < budget:
            assert response.finished_with_eos


def test_every_token_an_eos_gives_one_token_responses(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    everything = set(range(len(tokenizer)))
    responses = generate_batch(
        model, [_prompt(tokenizer, "Use 1 2 3 to make 6.")] * 3, [9] * 3, SamplingSettings(), everything, 0
    )
    assert [len(r.token_ids) for r in responses] == [1, 1, 1]
    assert all(r.finished_with_eos for r in responses)


@pytest.mark.parametrize(
    "settings", [SamplingSettings(temperature=0.0), SamplingSettings(top_k=1), SamplingSettings(top_p=1e-6)]
)
def test_greedy_settings_pick_the_arg_max(settings):
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(2))
    tokens, log_probs = sample_next_tokens(logits, settings, torch.Generator().manual_seed(3))
    assert torch.equal(tokens, logits.argmax(dim=-1))
    scale = settings.temperature if settings.temperature > 0 else 1.0
    assert torch.allclose(log_probs, torch.log_softmax(logits / scale, -1).max(dim=-1).values)


def test_top_k_never_samples_outside_the_k_best():
    logits = torch.randn(1, 30, generator=torch.Generator().manual_seed(4)).repeat(2000, 1)
    tokens, _ = sample_next_tokens(logits, SamplingSettings(top_k=3), torch.Generator().manual_seed(5))
    assert set(tokens.tolist()) <= set(torch.topk(logits[0], 3).indices.tolist())
    assert len(set(tokens.tolist())) == 3


def test_temperature_reshapes_the_sampling_distribution():
    logits = torch.tensor([[2.0, 0.0]]).repeat(20000, 1)
    for temperature in (0.5, 1.0, 2.0):
        tokens, log_probs = sample_next_tokens(logits, SamplingSettings(temperature), torch.Generator().manual_seed(6))
        p_first = 1 / (1 + math.exp(-2.0 / temperature))
        assert abs(float((tokens == 0).float().mean()) - p_first) < 0.015
        assert math.isclose(float(log_probs[tokens == 0][0]), math.log(p_first), rel_tol=1e-5)


def test_bad_inputs_are_refused_with_a_fix():
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0.0)
    model = torch.nn.Identity()
    with pytest.raises(ValueError, match="one per prompt"):
        generate_batch(model, [[1]], [1, 2], SamplingSettings(), {2}, 0)
    with pytest.raises(ValueError, match="at least one token"):
        generate_batch(model, [[]], [1], SamplingSettings(), {2}, 0)
    with pytest.raises(ValueError, match="generation_config"):
        generate_batch(model, [[1]], [1], SamplingSettings(), set(), 0)
