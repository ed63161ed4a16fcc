"""Response-length distributions for the synthetic variance lab: built-in shapes or lengths logged from real runs.

* ``uniform``: L ~ U{1, ..., M}.
* ``longtail``: L = round(exp(N(log(M/8), 1))) clipped to [1, M]: most responses are short, a long right tail, and
  the clip puts a point mass at M, like responses truncated at the generation limit (about 2% of them).
* a file: a CSV with a ``length`` or ``response_length`` column (or a single numeric column), or JSONL whose lines
  are numbers, lists of numbers, or objects with a ``length``/``response_length`` entry (number or list).
  Trials resample these lengths with replacement.

Library module; used by ``python -m deltal.analysis.variance synthetic --lengths uniform|longtail|FILE``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import torch

BUILTIN_DISTRIBUTIONS = ("uniform", "longtail")
LENGTH_KEYS = ("length", "response_length")
LONGTAIL_SIGMA = 1.0  # log-space spread of the long-tailed shape
LONGTAIL_MEDIAN_FRACTION = 1 / 8  # median length as a fraction of M


def _flatten_numbers(value: object, where: str) -> list[float]:
    if isinstance(value, bool) or not isinstance(value, int | float | list | dict):
        raise ValueError(f"{where}: expected a number, a list of numbers or an object with 'length', got {value!r}")
    if isinstance(value, dict):
        key = next((key for key in LENGTH_KEYS if key in value), None)
        if key is None:
            raise ValueError(f"{where}: object has none of the keys {LENGTH_KEYS}")
        return _flatten_numbers(value[key], where)
    if isinstance(value, list):
        return [number for item in value for number in _flatten_numbers(item, where)]
    return [float(value)]


def load_logged_lengths(path: str | Path) -> torch.Tensor:
    """Read response lengths from a CSV or JSONL file; (n,) float64. Raises ValueError on anything but lengths >= 1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; --lengths takes uniform, longtail or a CSV/JSONL of lengths")
    if path.suffix == ".jsonl":
        values = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                values.extend(_flatten_numbers(json.loads(line), f"{path}:{number}"))
    elif path.suffix == ".csv":
        frame = pd.read_csv(path)
        column = next((key for key in LENGTH_KEYS if key in frame.columns), None)
        if column is None and len(frame.columns) == 1:
            column = frame.columns[0]
        if column is None:
            raise ValueError(f"{path} needs a column named one of {LENGTH_KEYS} (has {list(frame.columns)})")
        values = pd.to_numeric(frame[column], errors="raise").tolist()
    else:
        raise ValueError(f"{path}: length files must end in .csv or .jsonl")
    lengths = torch.tensor(values, dtype=torch.float64)
    if lengths.numel() == 0:
        raise ValueError(f"{path} holds no lengths")
    if not bool(torch.isfinite(lengths).all()) or bool((lengths < 1).any()):
        raise ValueError(f"{path}: every length must be a finite number >= 1 (tokens)")
    return lengths.round()


def check_distribution(spec: str, max_response_length: int) -> torch.Tensor | None:
    """Validate ``spec``; return the logged lengths for a file (None for a built-in shape)."""
    if max_response_length < 1:
        raise ValueError(f"--max-response-length must be >= 1, got {max_response_length}")
    if spec in BUILTIN_DISTRIBUTIONS:
        return None
    logged = load_logged_lengths(spec)
    longest = int(logged.max())
    if longest > max_response_length:
        raise ValueError(
            f"{spec} has lengths up to {longest} > --max-response-length {max_response_length}; "
            "pass the generation limit those responses were sampled with"
        )
    return logged


def sample_lengths(
    spec: str, count: int, max_response_length: int, generator: torch.Generator, logged: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw ``count`` lengths in [1, M] from a built-in shape or from ``logged`` (resampled); (count,) float64."""
    if spec == "uniform":
        return torch.randint(1, max_response_length + 1, (count,), generator=generator).to(torch.float64)
    if spec == "longtail":
        log_median = math.log(max_response_length * LONGTAIL_MEDIAN_FRACTION)
        draws = torch.randn(count, generator=generator, dtype=torch.float64) * LONGTAIL_SIGMA + log_median
        return draws.exp().round().clamp(1, max_response_length)
    if logged is None:
        logged = check_distribution(spec, max_response_length)
    picks = torch.randint(0, logged.numel(), (count,), generator=generator)
    return logged[picks]
