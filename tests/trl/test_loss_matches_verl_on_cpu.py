"""The TRL path's ΔL loss equals the verl path's on the same batch, for every option.

One batch (uneven lengths, rewards, old log-probs that put some tokens in the PPO clip) goes through both paths:

* verl: deltal's ``delta_l`` estimator (advantage x ΔL weight, per token), then verl 0.9.1's vanilla policy loss with
  ``seq-mean-token-sum-norm`` and ``loss_scale_factor`` = M, driven as in
  ``tests/verl_adapter/test_loss_aggregation_invariance_on_cpu.py``;
* TRL: the same unweighted GRPO advantages (deltal's ``deltal_grpo`` estimator), reweighted by
  ``DeltaLGRPOTrainer.apply_delta_l``, then TRL 1.12.0's own ``compute_loss`` (``dr_grpo``).

Both take their log-probs from the same forward of the tiny model (TRL's ``_get_per_token_logps_and_entropies``), in
float64. The weighted advantages are identical, and the loss and its gradient w.r.t. every model parameter agree to
rtol 1e-10. The options (scope batch|group, exclude zero-advantage groups) and α are set once per path, through
each path's own config: ``algorithm.deltal.*`` for verl, ``DeltaLGRPOConfig`` for TRL.
"""

import numpy as np
import pytest
import torch
from conftest import cpu_config, load_model, make_trainer
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.workers.config import FSDPActorConfig

from deltal.verl_adapter.estimator import compute_delta_l_advantage, compute_deltal_grpo_advantage

M = 16  # max_completion_length = verl's max_response_length = loss_scale_factor
GROUP_SIZE = 4
LENGTHS = [3, 16, 9, 5, 12, 2, 7, 14, 6, 6, 11, 4]  # 3 groups of 4; one completion reaches M
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0]  # the middle group is all 0: advantage 0
PROMPT_LENGTH = 5


def build_batch(model, trainer) -> dict[str, torch.Tensor]:
    """Prompt and completion ids, masks and old log-probs as TRL's generation step returns them (B rows)."""
    generator = torch.Generator().manual_seed(0)
    rows = len(LENGTHS)
    vocab = model.config.vocab_size
    lengths = torch.tensor(LENGTHS)
    completion_mask = (torch.arange(M)[None, :] < lengths[:, None]).long()  # (B, M), right-padded
    completion_ids = torch.randint(3, vocab, (rows, M), generator=generator) * completion_mask
    prompt_ids = torch.randint(3, vocab, (rows, PROMPT_LENGTH), generator=generator)
    prompt_mask = torch.ones_like(prompt_ids)
    with torch.no_grad():
        current, _, _ = trainer._get_per_token_logps_and_entropies(
            model,
            torch.cat([prompt_ids, completion_ids], dim=1),
            torch.cat([prompt_mask, completion_mask], dim=1),
            M,
        )
    # Old log-probs a bounded step away: |log ratio| <= 0.6, so PPO's clip (0.2) engages on some tokens while verl's
    # dual clip (ratio > 3 with a negative advantage, which TRL does not have) never does.
    drift = (torch.randn(rows, M, generator=generator, dtype=torch.float64) * 0.3).clamp(-0.6, 0.6)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "old_per_token_logps": current + drift * completion_mask,
        "num_items_in_batch": completion_mask.sum(),
    }


def verl_algorithm_config(alpha: float, scope: str, exclude: bool) -> dict:
    """The ``algorithm`` section as deltal's config resolver writes it for method=delta_l."""
    deltal = {"method": "delta_l", "alpha": alpha, "max_response_length": M, "scope": scope}
    deltal["exclude_zero_advantage"] = exclude
    return {"norm_adv_by_std_in_grpo": True, "deltal": deltal}


def verl_inputs(batch) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(token_level_rewards, response_mask, uids): the reward on each response's last token, one uid per prompt."""
    mask = batch["completion_mask"].float()
    last_token = torch.nn.functional.one_hot(torch.tensor(LENGTHS) - 1, M).float()  # (B, M)
    token_level_rewards = last_token * torch.tensor(REWARDS)[:, None]
    uids = np.array([f"prompt-{row // GROUP_SIZE}" for row in range(len(LENGTHS))], dtype=object)
    return token_level_rewards, mask, uids


def verl_loss(model, trainer, batch, advantages: torch.Tensor) -> torch.Tensor:
    """verl 0.9.1's vanilla PPO loss with ΔL's aggregation, on log-probs from TRL's forward of the same model."""
    log_probs, _, _ = trainer._get_per_token_logps_and_entropies(
        model,
        torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
        torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
        M,
    )
    config = FSDPActorConfig(
        strategy="fsdp",
        rollout_n=GROUP_SIZE,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode="seq-mean-token-sum-norm",
        loss_scale_factor=M,
    )
    mask = batch["completion_mask"]
    config.global_batch_info.update(  # what verl's ppo_loss writes before calling the policy loss
        dp_size=1, batch_num_tokens=int(mask.sum()), global_batch_size=len(LENGTHS), loss_scale_factor=M
    )
    loss, _ = get_policy_loss_fn("vanilla")(
        old_log_prob=batch["old_per_token_logps"],
        log_prob=log_probs,
        advantages=advantages,
        response_mask=mask.bool(),
        loss_agg_mode=config.loss_agg_mode,
        config=config,
    )
    return loss


def gradients(model, loss: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return [parameter.grad.detach().clone() for parameter in model.parameters()]


@pytest.mark.parametrize(
    ("alpha", "scope", "exclude"),
    [(1.0, "batch", False), (0.5, "batch", False), (1.0, "group", False), (1.0, "batch", True), (0.75, "group", True)],
)
def test_trl_delta_l_loss_and_gradient_equal_the_verl_path(tiny_model_dir, tmp_path, alpha, scope, exclude):
    model, tokenizer = load_model(tiny_model_dir)
    config = cpu_config(
        tmp_path,
        max_completion_length=M,
        num_generations=GROUP_SIZE,
        per_device_train_batch_size=len(LENGTHS),
        delta_l_alpha=alpha,
        delta_l_scope=scope,
        delta_l_exclude_zero_advantage=exclude,
    )
    trainer = make_trainer(model, tokenizer, config, reward=lambda completions, **kwargs: [0.0] * len(completions))
    model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by transformers' training loop; one micro-batch here
    batch = build_batch(model, trainer)

    rewards, response_mask, uids = verl_inputs(batch)
    verl_config = verl_algorithm_config(alpha, scope, exclude)
    verl_advantages, _ = compute_delta_l_advantage(rewards, response_mask, uids, config=verl_config)  # (B, M)
    group_advantages, _ = compute_deltal_grpo_advantage(rewards, response_mask, uids, config=verl_config)

    batch["advantages"] = group_advantages[:, 0].clone()  # (B,) the GRPO advantage, as TRL hands it over
    trainer.apply_delta_l(batch)
    torch.testing.assert_close(batch["advantages"], verl_advantages[:, 0], rtol=0, atol=0)
    if exclude:
        assert (batch["advantages"][4:8] == 0).all(), "the all-zero group keeps advantage 0"

    trl_loss = trainer.compute_loss(model, batch)
    trl_grads = gradients(model, trl_loss)
    reference_loss = verl_loss(model, trainer, batch, verl_advantages.double())
    reference_grads = gradients(model, reference_loss)

    assert abs(reference_loss.item()) > 1e-6, "a non-trivial loss, so that equality means something"
    ratio = torch.exp(
        trainer._get_per_token_logps_and_entropies(
            model,
            torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1),
            M,
        )[0].detach()
        - batch["old_per_token_logps"]
    )
    clipped = ((ratio > 1.2) | (ratio < 0.8)) & batch["completion_mask"].bool()
    assert clipped.any(), "some tokens sit in the PPO clip, so both clip rules are compared"
    torch.testing.assert_close(trl_loss, reference_loss, rtol=1e-10, atol=1e-14)
    for trl_grad, reference_grad in zip(trl_grads, reference_grads, strict=True):
        torch.testing.assert_close(trl_grad, reference_grad, rtol=1e-10, atol=1e-14)
