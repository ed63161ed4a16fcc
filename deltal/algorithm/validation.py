"""Argument checks shared by the ΔL functions, with messages that say what to change. Library module."""

import math

import torch


def check_alpha(alpha: float) -> float:
    """Return α as a float, or raise ValueError if it is not a finite number >= 0 (booleans are not numbers)."""
    if isinstance(alpha, bool):
        raise ValueError(f"alpha must be a finite number >= 0 such as 0.75 or 1.0, got the boolean {alpha!r}")
    try:
        value = float(alpha)
    except (TypeError, ValueError) as err:
        raise ValueError(f"alpha must be a finite number >= 0 such as 0.75 or 1.0, got {alpha!r}") from err
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"alpha must be a finite number >= 0 (1.0 = minimum variance, 0.0 = Dr. GRPO Norm), got {alpha!r}"
        )
    return value


def check_max_response_length(max_response_length: float) -> float:
    """Return M as a float, or raise ValueError if it is not a finite number > 0."""
    try:
        value = float(max_response_length)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"max_response_length must be a positive number (data.max_response_length), got {max_response_length!r}"
        ) from err
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"max_response_length must be finite and > 0, got {max_response_length!r}; "
            "pass data.max_response_length (the generation limit in tokens)"
        )
    return value


def check_lengths_vector(lengths: torch.Tensor) -> None:
    """Raise ValueError unless `lengths` is a 1-D tensor (one entry per response)."""
    if not isinstance(lengths, torch.Tensor):
        raise ValueError(
            f"lengths must be a torch.Tensor of shape (batch_size,), got {type(lengths).__name__}; "
            "build it with deltal.algorithm.response_lengths(response_mask)"
        )
    if lengths.dim() != 1:
        raise ValueError(
            f"lengths must be 1-D (batch_size,), got shape {tuple(lengths.shape)}; "
            "use response_lengths(response_mask) to reduce a (bs, T) mask to lengths"
        )
