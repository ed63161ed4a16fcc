"""The ΔL algorithm as pure tensor functions (no verl import): lengths, advantage weights, aggregation
coefficients and the bias/variance theory of paper Table 1. Library package; nothing to run."""

from deltal.algorithm.aggregation import AGGREGATORS, aggregation_coefficients
from deltal.algorithm.lengths import response_lengths
from deltal.algorithm.theory import Moments, closed_form_moments, linear_combination_moments
from deltal.algorithm.weights import delta_l_advantage_weights, filter_overlong, overlong_mask

__all__ = [
    "AGGREGATORS",
    "Moments",
    "aggregation_coefficients",
    "closed_form_moments",
    "delta_l_advantage_weights",
    "filter_overlong",
    "linear_combination_moments",
    "overlong_mask",
    "response_lengths",
]
