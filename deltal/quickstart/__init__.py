"""Summary of a CPU quickstart run: reward and response length per step, a PNG of both, and the final line.

Reads the run's verl file-logger JSONL (``deltal.analysis.logs.iter_jsonl_records``), plots the training reward
(``critic/score/mean``, with a 5-step moving average) and mean response length over steps, and prints:

    quickstart: method=<name> steps=<n> reward_first=<x> reward_last=<y> wall_s=<t> plot=<path>

where the rewards are averaged over the first and the last ``--window`` training steps. Run by
``train_scripts/quickstart-cpu.sh``:

    python -m deltal.quickstart --metrics run.jsonl --plot run.png --method delta_l --wall-s 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

REWARD_METRIC = "critic/score/mean"
LENGTH_METRIC = "response_length/mean"
VAL_METRIC_PREFIX = "val-core/"


def training_curves(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Per-step (step, value) series of reward, response length and validation accuracy from a verl JSONL log."""
    from deltal.analysis.logs import iter_jsonl_records

    curves: dict[str, list[tuple[int, float]]] = {"reward": [], "length": [], "val": []}
    for step, data in iter_jsonl_records(Path(metrics_path)):
        if REWARD_METRIC in data:
            curves["reward"].append((step, float(data[REWARD_METRIC])))
        if LENGTH_METRIC in data:
            curves["length"].append((step, float(data[LENGTH_METRIC])))
        val = [float(v) for k, v in data.items() if k.startswith(VAL_METRIC_PREFIX) and k.endswith("/acc/mean@1")]
        if val:
            curves["val"].append((step, sum(val) / len(val)))
    if not curves["reward"]:
        raise ValueError(f"{metrics_path} has no '{REWARD_METRIC}' records; did training run any step?")
    return curves


def window_means(series: list[tuple[int, float]], window: int) -> tuple[float, float]:
    """Mean of the first and of the last ``window`` values (fewer when the run is shorter)."""
    values = [value for _, value in sorted(series)]
    width = max(1, min(window, len(values) // 2 or 1))
    return sum(values[:width]) / width, sum(values[-width:]) / width


def plot_curves(curves: dict[str, list[tuple[int, float]]], out_path: Path, title: str) -> Path:
    """Two panels: reward (raw, 5-step moving average, validation accuracy) and response length, over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (reward_ax, length_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps, rewards = zip(*sorted(curves["reward"]), strict=True)
    reward_ax.plot(steps, rewards, color="0.75", label="batch reward")
    smooth = [sum(rewards[max(0, i - 4) : i + 1]) / len(rewards[max(0, i - 4) : i + 1]) for i in range(len(rewards))]
    reward_ax.plot(steps, smooth, color="C0", label="5-step average")
    if curves["val"]:
        val_steps, val_acc = zip(*sorted(curves["val"]), strict=True)
        reward_ax.plot(val_steps, val_acc, "o--", color="C3", label="validation accuracy")
    reward_ax.set(xlabel="training step", ylabel="reward", title="reward")
    reward_ax.legend(loc="lower right", fontsize=8)
    if curves["length"]:
        length_steps, lengths = zip(*sorted(curves["length"]), strict=True)
        length_ax.plot(length_steps, lengths, color="C2")
    length_ax.set(xlabel="training step", ylabel="tokens", title="mean response length")
    fig.suptitle(title)
    fig.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


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


if __name__ == "__main__":
    main()
