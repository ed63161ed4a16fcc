"""ΔL through verl 0.9.1's own loss code: with ΔL-weighted advantages, `loss_agg_mode="seq-mean-token-sum-norm"`
and the constant `loss_scale_factor=M`, the total policy loss and its gradient w.r.t. the log-probs are identical
for 1, 2 and 4 micro-batches and for data-parallel splits of 2 and 4 ranks, even though verl trims every
micro-batch to its own longest response; the gradient coefficient on each response is the ΔL coefficient x_i.
With verl's default `loss_scale_factor=None` the divisor is the micro-batch width and the loss is NOT invariant,
which is why deltal sets the constant.

Splitting is simulated the way verl runs it: each rank gets a contiguous shard, splits it into micro-batches, calls
`ppo_loss` (or the vanilla policy loss with `global_batch_info` filled as `ppo_loss` fills it) per micro-batch and
accumulates gradients; FSDP then averages gradients over ranks.
"""

import pytest
import torch
from tensordict import TensorDict
from verl.trainer.ppo.core_algos import agg_loss, get_policy_loss_fn
from verl.utils import tensordict_utils as tu
from verl.workers.config import FSDPActorConfig
from verl.workers.utils.losses import ppo_loss

from deltal.algorithm import aggregation_coefficients, delta_l_advantage_weights, response_lengths

MAX_RESPONSE_LENGTH = 16  # M: the generation limit, larger than every response here
PADDING = -1  # marks verl's batch-padding rows: one response token, response_mask all 0
# Uneven lengths, padding rows spread over the shards; 10 real responses + 2 padding rows = 12 rows.
ROW_LENGTHS = [5, 13, PADDING, 1, 9, 2, 11, 7, 3, PADDING, 12, 6]
NUM_REAL = sum(length != PADDING for length in ROW_LENGTHS)  # verl's global_batch_size (ppo_mini_batch_size * n)
SPLITS = [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (4, 1)]  # (data-parallel ranks, micro-batches per rank)


def token_lengths() -> list[int]:
    """Tokens each row occupies (padding rows hold one masked token)."""
    return [1 if length == PADDING else length for length in ROW_LENGTHS]


def build_batch(alpha: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """A padded batch of width = longest response: mask, old log-probs, ΔL-weighted advantages, all (rows, T)."""
    generator = torch.Generator().manual_seed(seed)
    width = max(token_lengths())
    positions = torch.arange(width)[None, :]  # (1, T)
    real_lengths = torch.tensor([max(length, 0) for length in ROW_LENGTHS])  # (rows,)
    response_mask = (positions < real_lengths[:, None]).to(torch.float64)  # (rows, T)
    old_log_probs = -torch.rand(len(ROW_LENGTHS), width, generator=generator, dtype=torch.float64) * 3  # (rows, T)
    group_advantages = torch.randn(len(ROW_LENGTHS), generator=generator, dtype=torch.float64)  # (rows,)
    weights = delta_l_advantage_weights(response_lengths(response_mask), alpha=alpha).double()  # (rows,)
    advantages = (group_advantages * weights)[:, None] * response_mask  # (rows, T), as verl broadcasts over tokens
    # current log-probs drift from the old ones so that some tokens hit the PPO clip
    drift = torch.randn(len(ROW_LENGTHS), width, generator=generator, dtype=torch.float64) * 0.3
    return {
        "response_mask": response_mask,
        "old_log_probs": old_log_probs,
        "advantages": advantages,
        "unit_advantages": group_advantages,
        "log_probs": old_log_probs + drift,
    }


def actor_config(loss_scale_factor: int | None) -> FSDPActorConfig:
    return FSDPActorConfig(
        strategy="fsdp",
        rollout_n=1,
        ppo_micro_batch_size_per_gpu=1,
        loss_agg_mode="seq-mean-token-sum-norm",
        loss_scale_factor=loss_scale_factor,
    )


def shard_rows(num_ranks: int, num_micro: int) -> list[list[list[int]]]:
    """Row indices per rank per micro-batch: contiguous shards, each cut into contiguous micro-batches."""
    rows = list(range(len(ROW_LENGTHS)))
    per_rank = len(rows) // num_ranks
    per_micro = per_rank // num_micro
    return [
        [rows[r * per_rank + m * per_micro : r * per_rank + (m + 1) * per_micro] for m in range(num_micro)]
        for r in range(num_ranks)
    ]


def total_tokens(batch: dict[str, torch.Tensor]) -> int:
    return int(batch["response_mask"].sum().item())


def vanilla_loss_and_grad(
    batch: dict[str, torch.Tensor], num_ranks: int, num_micro: int, loss_scale_factor: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-averaged sum of micro-batch losses from verl's vanilla policy loss, and its gradient w.r.t. log-probs."""
    log_probs = batch["log_probs"].clone().requires_grad_(True)  # (rows, T) leaf standing in for the model output
    config = actor_config(loss_scale_factor)
    policy_loss = get_policy_loss_fn("vanilla")
    widths = token_lengths()
    total = torch.zeros((), dtype=torch.float64)
    for rank_micro_batches in shard_rows(num_ranks, num_micro):
        for rows in rank_micro_batches:
            width = max(widths[i] for i in rows)  # verl's no-padding path pads to the micro-batch's longest response
            # the same keys ppo_loss writes before calling the policy loss
            config.global_batch_info.update(
                dp_size=num_ranks,
                batch_num_tokens=total_tokens(batch),
                global_batch_size=NUM_REAL,
                loss_scale_factor=config.loss_scale_factor,
            )
            loss, _ = policy_loss(
                old_log_prob=batch["old_log_probs"][rows, :width],
                log_prob=log_probs[rows, :width],
                advantages=batch["advantages"][rows, :width],
                response_mask=batch["response_mask"][rows, :width].bool(),
                loss_agg_mode=config.loss_agg_mode,
                config=config,
            )
            total = total + loss / num_ranks  # grads accumulate over micro-batches, FSDP averages over ranks
    (gradient,) = torch.autograd.grad(total, log_probs)
    return total.detach(), gradient


def micro_batch_tensordict(batch: dict[str, torch.Tensor], rows: list[int], num_ranks: int) -> TensorDict:
    """A micro-batch as verl's engine hands it to ppo_loss: jagged tensors, 2-token prompts, global batch info."""
    widths = token_lengths()

    def jagged(key: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        return torch.nested.as_nested_tensor([batch[key][i, : widths[i]].to(dtype) for i in rows], layout=torch.jagged)

    data = TensorDict(
        {
            "prompts": torch.nested.as_nested_tensor(
                [torch.ones(2, dtype=torch.long) for _ in rows], layout=torch.jagged
            ),
            "responses": jagged("response_mask", torch.long),
            "response_mask": jagged("response_mask", torch.long),
            "old_log_probs": jagged("old_log_probs"),
            "advantages": jagged("advantages"),
        },
        batch_size=[len(rows)],
    )
    tu.assign_non_tensor(data, dp_size=num_ranks, batch_num_tokens=total_tokens(batch), global_batch_size=NUM_REAL)
    return data


def packed_log_probs(log_probs: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """The model's flat (total_tokens,) log-prob output for 2-token prompts: position t holds log p(token t+1)."""
    widths = token_lengths()
    pieces = []
    for i in rows:
        filler = torch.zeros(1, dtype=log_probs.dtype)
        pieces += [filler, log_probs[i, : widths[i]], filler]  # prompt[0] | response tokens | last position
    return torch.cat(pieces)


def ppo_loss_and_grad(
    batch: dict[str, torch.Tensor], num_ranks: int, num_micro: int, loss_scale_factor: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same through verl's `ppo_loss` (engine path: jagged inputs, padding to the micro-batch width inside)."""
    log_probs = batch["log_probs"].clone().requires_grad_(True)
    config = actor_config(loss_scale_factor)
    total = torch.zeros((), dtype=torch.float64)
    for rank_micro_batches in shard_rows(num_ranks, num_micro):
        for rows in rank_micro_batches:
            data = micro_batch_tensordict(batch, rows, num_ranks)
            loss, _ = ppo_loss(config, {"log_probs": packed_log_probs(log_probs, rows)}, data)
            total = total + loss / num_ranks
    (gradient,) = torch.autograd.grad(total, log_probs)
    return total.detach(), gradient


@pytest.mark.parametrize("loss_path", [vanilla_loss_and_grad, ppo_loss_and_grad], ids=["vanilla", "ppo_loss"])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
@pytest.mark.parametrize(("num_ranks", "num_micro"), SPLITS)
def test_delta_l_loss_and_gradient_are_identical_for_every_micro_batch_and_data_parallel_split(
    loss_path, alpha, num_ranks, num_micro
):
    batch = build_batch(alpha)
    reference_loss, reference_grad = loss_path(batch, 1, 1, MAX_RESPONSE_LENGTH)
    loss, grad = loss_path(batch, num_ranks, num_micro, MAX_RESPONSE_LENGTH)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert reference_loss.abs() > 1e-6  # a non-trivial loss, so equality means something
    torch.testing.assert_close(loss, reference_loss, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss_path", [vanilla_loss_and_grad, ppo_loss_and_grad], ids=["vanilla", "ppo_loss"])
def test_gradient_coefficient_on_each_response_is_the_delta_l_coefficient(loss_path):
    # At ratio 1 (log_probs == old_log_probs) the PPO loss is -Σ_i A_i Σ_t ratio_it / (B·M), so d loss / d log p_it
    # = -A_i / (B·M) with A_i = w_i · Â_i: the coefficient on response i's gradient Â_i Σ_t ∇log p_it is
    # w_i / (B·M), which must equal the paper's x_i = (1/M) L_i^-α / Σ_j L_j^-α.
    alpha = 0.75
    batch = build_batch(alpha)
    batch["log_probs"] = batch["old_log_probs"].clone()
    _, grad = loss_path(batch, 2, 2, MAX_RESPONSE_LENGTH)
    lengths = response_lengths(batch["response_mask"]).double()
    valid = lengths > 0
    coefficients = -grad[valid, 0] / batch["unit_advantages"][valid]  # every real response has a token 0
    expected = aggregation_coefficients("delta_l", lengths, MAX_RESPONSE_LENGTH, alpha=alpha)
    torch.testing.assert_close(coefficients, expected[valid], rtol=1e-5, atol=1e-12)
    assert (grad[~valid] == 0).all()
    torch.testing.assert_close(grad, grad[:, :1] * batch["response_mask"])  # the same coefficient on every token


@pytest.mark.parametrize("loss_path", [vanilla_loss_and_grad, ppo_loss_and_grad], ids=["vanilla", "ppo_loss"])
def test_default_loss_scale_factor_is_not_micro_batch_invariant(loss_path):
    # loss_scale_factor=None makes agg_loss divide by loss_mask.shape[-1], the width of each trimmed micro-batch.
    batch = build_batch(1.0)
    one_batch_loss, _ = loss_path(batch, 1, 1, None)
    split_loss, _ = loss_path(batch, 1, 4, None)
    constant_loss, _ = loss_path(batch, 1, 1, MAX_RESPONSE_LENGTH)
    assert not torch.allclose(split_loss, one_batch_loss, rtol=1e-2)
    # one full-width batch divides by the longest response (13) instead of M (16)
    torch.testing.assert_close(one_batch_loss, constant_loss * MAX_RESPONSE_LENGTH / max(token_lengths()))


@pytest.mark.parametrize(("num_ranks", "num_micro"), SPLITS)
def test_agg_loss_of_any_token_matrix_is_split_invariant_with_a_constant_scale(num_ranks, num_micro):
    # Entropy and KL terms go through agg_loss with the same global_batch_info, so they must be invariant too.
    batch = build_batch(1.0)
    loss_matrix = torch.randn(
        batch["response_mask"].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    mask = batch["response_mask"].bool()
    widths = token_lengths()
    total = torch.zeros((), dtype=torch.float64)
    for rank_micro_batches in shard_rows(num_ranks, num_micro):
        for rows in rank_micro_batches:
            width = max(widths[i] for i in rows)
            total += (
                agg_loss(
                    loss_matrix[rows, :width],
                    mask[rows, :width],
                    "seq-mean-token-sum-norm",
                    dp_size=num_ranks,
                    global_batch_size=NUM_REAL,
                    loss_scale_factor=MAX_RESPONSE_LENGTH,
                )
                / num_ranks
            )
    expected = (loss_matrix * mask).sum() / (NUM_REAL * MAX_RESPONSE_LENGTH)
    torch.testing.assert_close(total, expected, rtol=1e-12, atol=1e-15)
