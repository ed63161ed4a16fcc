"""ΔL advantage weights and overlong filtering, the two per-response reweightings applied to advantages.

ΔL Normalization (arXiv 2509.07558) combines per-response gradients g_i with coefficients
x_i = (1/M) · L_i^-α / Σ_j L_j^-α. In training this is realised as an advantage weight

    w_i = L_i^-α / mean_j L_j^-α          (mean over the valid responses of the batch)

followed by verl's `seq-mean-token-sum-norm` aggregation with the constant `loss_scale_factor = M`, which divides the
per-response token sums by B·M. The coefficient on g_i is then w_i / (B·M) = x_i: unbiased for every α (the
coefficients sum to 1/M) and minimum variance at α = 1. α = 0 gives w_i = 1, i.e. Dr. GRPO Norm.

Library module; nothing to run.
"""

import torch

from deltal.algorithm.validation import check_alpha, check_lengths_vector, check_max_response_length


def delta_l_advantage_weights(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-response ΔL weights w_i = L_i^-α / mean_j L_j^-α.

    Lengths are first divided by their mean so that L^-α stays in float32 range for long responses and large α
    (the ratio is scale-free, so this changes nothing mathematically). Rows of length 0 are verl's batch-padding
    rows: they get weight 0 and are left out of both means, so they neither produce NaN (0^-α = inf) nor shift the
    other weights. Fully vectorised, no host sync.

    Args:
        lengths: (bs,) response lengths in tokens (see `response_lengths`).
        alpha: exponent α, finite and >= 0.

    Returns:
        (bs,) float32 weights on the lengths' device; the valid rows have mean 1. All zeros if no row is valid.
    """
    alpha = check_alpha(alpha)
    check_lengths_vector(lengths)
    lengths = lengths.to(torch.float32)
    valid = lengths > 0  # (bs,)
    num_valid = valid.sum().clamp(min=1).to(torch.float32)  # clamp: an all-padding batch divides by 1, not 0
    mean_length = torch.where(valid, lengths, 0.0).sum() / num_valid
    # Padding rows get a dummy relative length of 1 so that pow stays finite; they are zeroed right after.
    relative_lengths = torch.where(valid, lengths / mean_length.clamp(min=1e-30), 1.0)  # (bs,)
    inverse_powers = torch.where(valid, relative_lengths.pow(-alpha), 0.0)  # (bs,)  L_i^-α up to a common factor
    mean_inverse_power = inverse_powers.sum() / num_valid
    return inverse_powers / mean_inverse_power.clamp(min=1e-30)


def overlong_mask(lengths: torch.Tensor, max_response_length: int) -> torch.Tensor:
    """Which responses reached the generation limit (and so were cut off before finishing).

    Args:
        lengths: (bs,) response lengths in tokens.
        max_response_length: the generation limit M in tokens (data.max_response_length).

    Returns:
        (bs,) bool, True where the response length is >= max_response_length.
    """
    check_lengths_vector(lengths)
    limit = check_max_response_length(max_response_length)
    return lengths >= limit


def filter_overlong(advantages: torch.Tensor, lengths: torch.Tensor, max_response_length: int) -> torch.Tensor:
    """Zero the advantages of responses that reached max_response_length (overlong filtering, DAPO section 3.3).

    A truncated response has no real outcome, so its reward says nothing about its tokens; zeroing its advantage
    removes it from the policy gradient without touching the batch shape.

    Args:
        advantages: (bs,) per-response or (bs, response_len) per-token advantages.
        lengths: (bs,) response lengths in tokens.
        max_response_length: the generation limit in tokens.

    Returns:
        A new tensor shaped like `advantages` with the overlong rows set to 0.
    """
    overlong = overlong_mask(lengths, max_response_length)  # (bs,)
    if advantages.dim() not in (1, 2) or advantages.shape[0] != lengths.shape[0]:
        raise ValueError(
            f"advantages must have shape (bs,) or (bs, response_len) with bs = len(lengths) = {lengths.shape[0]}, "
            f"got {tuple(advantages.shape)}"
        )
    if advantages.dim() == 2:
        overlong = overlong.unsqueeze(-1)  # (bs, 1) broadcasts over tokens
    return advantages.masked_fill(overlong, 0.0)
