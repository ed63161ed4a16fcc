"""How far training moved a model: each checkpoint's L2 distance from a base model, over all its weights.

With Adam the size of an update does not follow the gradient's scale (the step is m / sqrt(v) per parameter), so two
aggregators at the same learning rate can move the weights by different amounts even when one's gradient is half
the other's. Comparing checkpoints of runs that started from the same model tells which one stepped further.
Library module; command line: ``python -m deltal.analysis drift --base DIR CHECKPOINT...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from deltal.analysis.checkpoints import model_folder


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the model at ``path`` (all shards), in float64 so long sums of squares stay exact enough."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for shard in sorted(model_folder(path).glob("*.safetensors")):
        weights.update({name: tensor.to(torch.float64) for name, tensor in load_file(shard).items()})
    return weights


def weight_drift(base: Path, checkpoints: Sequence[Path]) -> pd.DataFrame:
    """One row per checkpoint (named by its path as given): its distance from ``base``, the distance relative to
    the base's norm, and the largest change of any single weight."""
    start = load_weights(base)
    base_norm = torch.sqrt(sum(tensor.square().sum() for tensor in start.values())).item()
    rows = []
    for checkpoint in checkpoints:
        moved = load_weights(checkpoint)
        if moved.keys() != start.keys() or any(moved[name].shape != start[name].shape for name in start):
            raise ValueError(
                f"{checkpoint} is not the same model as the base {base} (other tensor names or shapes); pass the "
                f"model the run started from as --base"
            )
        deltas = [moved[name] - start[name] for name in start]
        distance = torch.sqrt(sum(delta.square().sum() for delta in deltas)).item()
        rows.append(
            {
                "checkpoint": str(checkpoint),
                "distance": distance,
                "relative_distance": distance / base_norm,
                "max_abs_change": max(delta.abs().max().item() for delta in deltas),
            }
        )
    return pd.DataFrame(rows)
