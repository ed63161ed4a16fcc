"""Per-group ΔL weights and the zero-advantage groups, the two options that go beyond the paper's batch-wide ΔL.

* **Group scope.** The paper (and `deltal.algorithm.weights.delta_l_advantage_weights`) normalises the ΔL weights
  over the whole batch: w_i = L_i^-α / mean_{j in batch} L_j^-α, so a prompt whose responses are all short gets more
  total weight than one whose responses are long. In group scope each prompt's responses are normalised among
  themselves, w_i = L_i^-α / mean_{j in group(i)} L_j^-α: the weights average 1 within every group, so every prompt
  keeps the total weight it has without ΔL. Σ_i w_i is still the number of valid responses, so with the constant
  divisor B·M the coefficients x_i = w_i / (B·M) still sum to 1/M: unbiased under the paper's model for every α.
* **Zero-advantage groups.** A group (≥ 2 responses of one prompt) whose rewards are all equal has GRPO advantage 0
  for every member and carries no gradient; `constant_reward_rows` finds those rows so that the caller can leave
  them out of the weight normaliser (pass their lengths as 0, which every weight function treats as padding).
  verl's GRPO gives a single-response group the advantage r_i (mean 0, std 1), so singletons are never excluded.

Group ids are verl's contiguous indices (0 .. G-1, from `verl.utils.groupwise.as_torch_index`), so every id is
< bs and the per-group sums are (bs,) buffers: no host sync. Library module; nothing to run.
"""

import torch

from deltal.algorithm.validation import check_alpha, check_lengths_vector

# Where the ΔL weights are normalised: over the whole batch (the paper) or within each prompt's group.
SCOPES: tuple[str, ...] = ("batch", "group")


def check_group_ids(group_ids: torch.Tensor, batch_size: int) -> None:
    """Raise ValueError unless `group_ids` is an integer (bs,) tensor (values are not read: that would sync)."""
    if not isinstance(group_ids, torch.Tensor) or group_ids.dtype.is_floating_point or group_ids.dim() != 1:
        raise ValueError(
            "group_ids must be a 1-D integer tensor (one contiguous group index per response); build it from verl's "
            "uids with verl.utils.groupwise.as_torch_index(index)"
        )
    if group_ids.shape[0] != batch_size:
        raise ValueError(f"group_ids has {group_ids.shape[0]} entries but the batch has {batch_size} responses")


def group_sums(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Σ of `values` over each row's group, returned per row: (bs,) -> (bs,)."""
    totals = torch.zeros_like(values).index_add_(0, group_ids, values)  # (bs,) slot g holds group g's sum
    return totals[group_ids]


def group_delta_l_advantage_weights(lengths: torch.Tensor, group_ids: torch.Tensor, alpha: float) -> torch.Tensor:
    """Group-scope ΔL weights w_i = L_i^-α / mean_{j in group(i)} L_j^-α (mean over the group's valid rows).

    Rows of length 0 (verl's batch padding, or rows the caller excludes) get weight 0 and stay out of their group's
    mean. A group with no valid row contributes nothing. Fully vectorised, no host sync.

    Args:
        lengths: (bs,) response lengths in tokens.
        group_ids: (bs,) contiguous group index of each response (0 .. G-1 with G <= bs).
        alpha: exponent α, finite and >= 0.

    Returns:
        (bs,) weights in the lengths' floating dtype (float32 for integer lengths); each group's valid rows have
        mean 1.
    """
    alpha = check_alpha(alpha)
    check_lengths_vector(lengths)
    check_group_ids(group_ids, lengths.shape[0])
    dtype = lengths.dtype if lengths.is_floating_point() else torch.float32
    lengths = lengths.to(dtype)
    valid = lengths > 0  # (bs,)
    # Divide by the batch's mean length first so that L^-α stays in range (the ratio is scale-free).
    mean_length = torch.where(valid, lengths, 0.0).sum() / valid.sum().clamp(min=1).to(dtype)
    relative_lengths = torch.where(valid, lengths / mean_length.clamp(min=1e-30), 1.0)  # dummy 1 keeps pow finite
    inverse_powers = torch.where(valid, relative_lengths.pow(-alpha), 0.0)  # (bs,)
    group_counts = group_sums(valid.to(dtype), group_ids)  # (bs,) valid responses in each row's group
    group_means = group_sums(inverse_powers, group_ids) / group_counts.clamp(min=1)
    return inverse_powers / group_means.clamp(min=1e-30)


def constant_reward_rows(scores: torch.Tensor, group_ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Rows whose group has at least 2 valid responses, all with the same reward (GRPO advantage 0 for each).

    Args:
        scores: (bs,) outcome reward of each response.
        group_ids: (bs,) contiguous group index of each response.
        valid: (bs,) bool, False on batch-padding rows (which never count, and are never returned).

    Returns:
        (bs,) bool. No host sync.
    """
    check_group_ids(group_ids, scores.shape[0])
    scores = scores.to(torch.float64)  # exact comparison of the rewards as given
    lowest = torch.full_like(scores, torch.inf).scatter_reduce(
        0, group_ids, torch.where(valid, scores, torch.inf), reduce="amin"
    )  # (bs,) slot g: group g's lowest reward over its valid rows
    highest = torch.full_like(scores, -torch.inf).scatter_reduce(
        0, group_ids, torch.where(valid, scores, -torch.inf), reduce="amax"
    )
    counts = group_sums(valid.to(torch.float64), group_ids)  # (bs,)
    return valid & (counts >= 2) & (lowest[group_ids] == highest[group_ids])
