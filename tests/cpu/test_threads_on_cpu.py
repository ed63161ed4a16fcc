"""Two torch threads compute what one computes, bit for bit, for the CPU backend's actor.

Property: on the quickstart's model shape, a padded micro-batch of 128 sequences (``use_remove_padding: false``, as
the CPU backend runs it) gives identical logits, summed token log-probs, gradients and AdamW-updated weights with one
and with two intra-op threads. This is what lets ``deltal/config/backend/cpu.yaml`` give every Ray worker
``OMP_NUM_THREADS=2`` without changing what is computed (docs/cpu-step-profile.md).
"""

import copy

import torch
from transformers import AutoModelForCausalLM

from deltal.train import compose_config


def _step(model, input_ids, attention_mask, threads: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = copy.deepcopy(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        log_probs = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        loss = -(log_probs * attention_mask[:, 1:]).sum()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        optimizer.step()
        return logits.detach(), loss.detach(), grads, [p.detach().clone() for p in model.parameters()]
    finally:
        torch.set_num_threads(previous)


def test_cpu_backend_gives_ray_workers_two_threads():
    cfg = compose_config(["backend=cpu", "method=delta_l"])
    assert cfg.ray_kwargs.ray_init.runtime_env.env_vars.OMP_NUM_THREADS == "2"


def test_one_and_two_threads_give_identical_forward_backward_and_update(tiny_assets):
    model = AutoModelForCausalLM.from_pretrained(tiny_assets, dtype=torch.float32, attn_implementation="sdpa")
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, model.config.vocab_size, (128, 56), generator=generator)
    lengths = torch.randint(20, 57, (128,), generator=generator)
    attention_mask = (torch.arange(56)[None, :] < lengths[:, None]).long()
    one = _step(model, input_ids, attention_mask, threads=1)
    two = _step(model, input_ids, attention_mask, threads=2)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert all(torch.equal(a, b) for a, b in zip(one[2], two[2], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(one[3], two[3], strict=True))
