"""Per-response aggregation coefficients x_i of each loss-aggregation method (paper Table 1).

Every aggregation in the paper is a linear combination ĝ = Σ_i x_i g_i of the unnormalised per-response gradients
g_i of one group of G responses with lengths L_i (M = maximum response length):

| name           | x_i                          | verl `loss_agg_mode`                    |
|----------------|------------------------------|-----------------------------------------|
| `grpo_norm`    | 1 / (G · L_i)                | `seq-mean-token-mean`                   |
| `dapo_norm`    | 1 / Σ_j L_j                  | `token-mean`                            |
| `dr_grpo_norm` | 1 / (G · M)                  | `seq-mean-token-sum-norm`, scale = M    |
| `delta_l`      | (1/M) · L_i^-α / Σ_j L_j^-α  | ΔL weights + `seq-mean-token-sum-norm`  |

These coefficients feed the theory module and the variance lab; training itself uses
`deltal.algorithm.weights.delta_l_advantage_weights`. Library module; nothing to run.
"""

import torch

from deltal.algorithm.validation import check_alpha, check_lengths_vector, check_max_response_length

# Coefficient formulas, not methods: Dr. GRPO shares dr_grpo_norm's. Methods are deltal/verl_adapter/methods.py.
AGGREGATORS: tuple[str, ...] = ("grpo_norm", "dapo_norm", "dr_grpo_norm", "delta_l")


def check_aggregator(aggregator: str) -> None:
    """Raise ValueError naming the known aggregators unless `aggregator` is one of them."""
    if aggregator not in AGGREGATORS:
        raise ValueError(f"unknown aggregator {aggregator!r}; choose one of {', '.join(AGGREGATORS)}")


def check_group_lengths(lengths: torch.Tensor, max_response_length: float) -> float:
    """Validate a group's lengths against M (0 <= L_i <= M) and return M as a float."""
    check_lengths_vector(lengths)
    limit = check_max_response_length(max_response_length)
    if bool((lengths < 0).any()) or bool((lengths > limit).any()):
        raise ValueError(
            f"lengths must lie in [0, max_response_length={limit:g}], got min {lengths.min().item():g} and max "
            f"{lengths.max().item():g}; pass the true generation limit as max_response_length"
        )
    return limit


def aggregation_coefficients(
    aggregator: str, lengths: torch.Tensor, max_response_length: float, alpha: float = 1.0
) -> torch.Tensor:
    """Coefficients x_i of ĝ = Σ x_i g_i for one batch/group, following paper Table 1.

    Rows of length 0 (batch padding) get coefficient 0 and are not counted in G. Computed in float64.

    Args:
        aggregator: one of `AGGREGATORS`.
        lengths: (G,) response lengths in tokens, each in [0, max_response_length].
        max_response_length: M, the maximum response length.
        alpha: ΔL exponent (used by `delta_l` only), finite and >= 0.

    Returns:
        (G,) coefficients in the lengths' floating dtype (float32 for integer lengths); all zeros if no row is valid.
    """
    check_aggregator(aggregator)
    alpha = check_alpha(alpha)
    limit = check_group_lengths(lengths, max_response_length)
    out_dtype = lengths.dtype if lengths.is_floating_point() else torch.float32
    lengths = lengths.to(torch.float64)
    valid = lengths > 0  # (G,)
    group_size = valid.sum().to(torch.float64)  # G counts valid responses only
    safe_lengths = torch.where(valid, lengths, 1.0)  # dummy 1 on padding rows keeps 1/L and L^-α finite
    if aggregator == "grpo_norm":
        coefficients = 1.0 / (group_size * safe_lengths)
    elif aggregator == "dapo_norm":
        coefficients = (1.0 / lengths.sum()).expand_as(lengths)
    elif aggregator == "dr_grpo_norm":
        coefficients = (1.0 / (group_size * limit)).expand_as(lengths)
    else:  # delta_l
        inverse_powers = torch.where(valid, safe_lengths.pow(-alpha), 0.0)
        coefficients = inverse_powers / (limit * inverse_powers.sum())
    return torch.where(valid, coefficients, 0.0).to(out_dtype)
