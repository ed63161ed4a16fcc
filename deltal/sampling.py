"""Batched token sampling with a transformers causal LM on CPU: the generation engine of deltal's CPU rollout.

``generate_batch`` runs left-padded prompts through the model with a KV cache, one new token per step, and
returns each response with the log-probability of every sampled token. It honours temperature (0 = greedy),
top-k (<= 0 = off), top-p (1 = off), a per-request token budget, and the EOS ids from the model's generation
config; the EOS token is kept as the last response token (as vLLM does) so verl's masks see where it ended.

Log-probs are taken from the temperature-scaled, untruncated distribution, ``log_softmax(logits / T)``; that is
what verl's actor computes for the same tokens (``old_log_prob``), so rollout-vs-actor diagnostics compare like
with like. Under greedy decoding (T=0) they are ``log_softmax(logits)``.

No command line. It sits below both of its users: the CPU rollout (``deltal.cpu.token_server``) and warm starts, and
the variance labs (``deltal.analysis.variance_model``), which sample with it on CPU (docs/layers.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingSettings:
    """How to pick each token. ``temperature <= 0`` means greedy; ``top_k <= 0`` and ``top_p >= 1`` mean off."""

    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]; use 1.0 to turn nucleus sampling off.")


@dataclass
class SampledResponse:
    """One generated response: token ids, their log-probs, and whether it ended with EOS (vs. the budget)."""

    token_ids: list[int]
    log_probs: list[float]
    finished_with_eos: bool


def sample_next_tokens(
    logits: torch.Tensor, settings: SamplingSettings, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of ``logits`` (bs, vocab); return (token ids (bs,), their log-probs (bs,))."""
    logits = logits.float()
    if settings.temperature <= 0:
        tokens = logits.argmax(dim=-1)
        log_probs = torch.log_softmax(logits, dim=-1)
        return tokens, log_probs.gather(-1, tokens[:, None]).squeeze(-1)

    scaled = logits / settings.temperature  # (bs, vocab)
    log_probs = torch.log_softmax(scaled, dim=-1)
    filtered = scaled.clone()
    if settings.top_k > 0 and settings.top_k < filtered.shape[-1]:
        kth_best = torch.topk(filtered, settings.top_k, dim=-1).values[:, -1:]  # (bs, 1)
        filtered[filtered < kth_best] = float("-inf")
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(filtered, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p; the best token always stays.
        drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= settings.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        filtered[drop] = float("-inf")
    probs = torch.softmax(filtered, dim=-1)
    tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
    return tokens, log_probs.gather(-1, tokens[:, None]).squeeze(-1)


@torch.no_grad()
def generate_batch(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: Sequence[int],
    settings: SamplingSettings,
    eos_token_ids: set[int],
    pad_token_id: int,
    generator: torch.Generator | None = None,
    ignore_eos: bool = False,
) -> list[SampledResponse]:
    """Sample one response per prompt, all prompts in one left-padded batch sharing ``settings``."""
    if len(prompts) != len(max_new_tokens):
        raise ValueError(f"Got {len(prompts)} prompts but {len(max_new_tokens)} token budgets; pass one per prompt.")
    if not prompts:
        return []
    if any(len(p) == 0 for p in prompts):
        raise ValueError("Every prompt needs at least one token; an empty prompt has nothing to condition on.")
    if not eos_token_ids and not ignore_eos:
        raise ValueError("No EOS token id: set eos_token_id in the model's generation_config.json.")

    batch_size = len(prompts)
    prompt_width = max(len(p) for p in prompts)
    input_ids = torch.full((batch_size, prompt_width), pad_token_id, dtype=torch.long)  # (bs, prompt_width)
    attention_mask = torch.zeros((batch_size, prompt_width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, prompt_width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
        attention_mask[row, prompt_width - len(prompt) :] = 1
    # Positions count real tokens only, so a left-padded prompt sees the same positions as an unpadded one.
    position_ids = (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)  # (bs, prompt_width)

    budgets = torch.tensor(list(max_new_tokens), dtype=torch.long)  # (bs,)
    eos = torch.tensor(sorted(eos_token_ids), dtype=torch.long)
    responses = [SampledResponse(token_ids=[], log_probs=[], finished_with_eos=False) for _ in prompts]
    active = budgets > 0  # (bs,) rows still generating

    outputs = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    next_position = position_ids[:, -1:] + 1  # (bs, 1)
    step = 0
    while bool(active.any()):
        tokens, log_probs = sample_next_tokens(outputs.logits[:, -1, :], settings, generator)  # (bs,), (bs,)
        for row in torch.nonzero(active).flatten().tolist():
            responses[row].token_ids.append(int(tokens[row]))
            responses[row].log_probs.append(float(log_probs[row]))
        step += 1
        hit_eos = torch.isin(tokens, eos) & ~torch.tensor(ignore_eos)
        for row in torch.nonzero(active & hit_eos).flatten().tolist():
            responses[row].finished_with_eos = True
        active = active & ~hit_eos & (budgets > step)
        if not bool(active.any()):
            break
        # Finished rows keep decoding a pad token (their output is ignored) so the batch stays rectangular.
        feed = torch.where(active, tokens, torch.full_like(tokens, pad_token_id))[:, None]  # (bs, 1)
        attention_mask = torch.cat([attention_mask, torch.ones((batch_size, 1), dtype=torch.long)], dim=-1)
        outputs = model(
            input_ids=feed,
            attention_mask=attention_mask,
            position_ids=next_position,
            past_key_values=outputs.past_key_values,
            use_cache=True,
        )
        next_position = next_position + 1
    return responses
