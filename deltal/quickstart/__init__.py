"""Summary of a CPU quickstart run: reward and response length per step, a PNG of both, and the final line.

Exports the run's verl file-logger JSONL to the tidy table (``deltal.analysis.logs.load_file_logs``), plots the
training reward (``critic/score/mean``, with a 5-step moving average) and mean response length over steps with
``deltal.analysis.plots``, and prints:

    quickstart: method=<name> steps=<n> reward_first=<x> reward_last=<y> wall_s=<t> plot=<path>

where the rewards are averaged over the first and the last ``--window`` training steps. Run by
``train_scripts/quickstart-cpu.sh``:

    python -m deltal.quickstart --metrics run.jsonl --plot run.png --method delta_l --wall-s 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from deltal.analysis.logs import load_file_logs
from deltal.analysis.plots import plot_reward_and_length

REWARD_METRIC = "critic/score/mean"
LENGTH_METRIC = "response_length/mean"
VAL_METRIC_PREFIX = "val-core/"


def _series(frame: pd.DataFrame) -> list[tuple[int, float]]:
    return [(int(step), float(value)) for step, value in zip(frame["step"], frame["value"], strict=True)]


def training_curves(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-step (step, value) series of reward, response length and validation accuracy from a verl JSONL log.

    The log is exported to the tidy table of ``deltal.analysis.logs`` first, as every other plot of the package.
    """
    frame = load_file_logs([Path(metrics_path)])
    metric = frame["metric"]
    val = frame[metric.str.startswith(VAL_METRIC_PREFIX) & metric.str.endswith("/acc/mean@1")]
    curves = {
        "reward": _series(frame[metric == REWARD_METRIC]),
        "length": _series(frame[metric == LENGTH_METRIC]),
        "val": _series(val.groupby("step", as_index=False)["value"].mean()),
    }
    if not curves["reward"]:
        raise ValueError(f"{metrics_path} has no '{REWARD_METRIC}' records; did training run any step?")
    return curves


def window_means(series: list[tuple[int, float]], window: int) -> tuple[float, float]:
    """Mean of the first and of the last ``window`` values (fewer when the run is shorter)."""
    values = [value for _, value in sorted(series)]
    width = max(1, min(window, len(values) // 2 or 1))
    return sum(values[:width]) / width, sum(values[-width:]) / width


def plot_curves(curves: dict[str, list[tuple[int, float]]], out_path: Path, title: str) -> Path:
    """The quickstart's PNG: reward (raw, 5-step average, validation accuracy) and mean response length."""
    return plot_reward_and_length(curves["reward"], curves["length"], curves["val"], Path(out_path), title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=Path, required=True, help="verl file-logger JSONL of the run")
    parser.add_argument("--plot", type=Path, required=True, help="PNG to write")
    parser.add_argument("--method", required=True, help="method name for the summary line")
    parser.add_argument("--wall-s", type=float, required=True, help="wall time of the whole quickstart, seconds")
    parser.add_argument("--window", type=int, default=5, help="steps averaged at the start and at the end")
    args = parser.parse_args()

    curves = training_curves(args.metrics)
    reward_first, reward_last = window_means(curves["reward"], args.window)
    plot_path = plot_curves(curves, args.plot, f"CPU quickstart: {args.method}")
    for step, value in curves["val"]:
        print(f"validation accuracy at step {step}: {value:.3f}")
    print(
        f"quickstart: method={args.method} steps={len(curves['reward'])} reward_first={reward_first:.3f} "
        f"reward_last={reward_last:.3f} wall_s={args.wall_s:.0f} plot={plot_path}"
    )

