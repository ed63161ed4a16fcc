"""Training curves from the tidy run table: score, response length and entropy against step, one line per method.

Writes one PNG per (model, quantity) into the output directory, named ``{task}__{model}__{quantity}.png``. Seeds of
the same method are averaged per step. The score is the paper's (CountDown Avg@k; Math weighted Avg@k); the
training quantities are verl's ``response_length/mean`` and ``actor/entropy``, plus deltal's own
``deltal/adv_weight/std``, ``deltal/truncated_fraction`` and the variance telemetry when the run logged them: each
method's CV relative to ΔL(α=1) on its own batches (``deltal/variance/cv_ratio_to_optimal``) and its expectation
scale relative to 1/M (``deltal/bias/scale_ratio``), and per model one figure of what each baseline aggregator would
have cost on the same batches (``deltal/variance/cv_ratio/<aggregator>``, averaged over the model's runs).
Uses matplotlib's object API (Agg canvas), so no display is needed.
Command line: ``python -m deltal.analysis curves runs.csv --task countdown|math --out DIR``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from deltal.analysis.metrics import MATH_QUESTION_COUNTS, task_scores
from deltal.analysis.tables import method_label, method_order

logger = logging.getLogger(__name__)

# Quantity name -> logged metric; the first two are expected in every verl run.
TRAINING_CURVES: dict[str, str] = {
    "response_length": "response_length/mean",
    "entropy": "actor/entropy",
    "adv_weight_std": "deltal/adv_weight/std",
    "truncated_fraction": "deltal/truncated_fraction",
    "cv_ratio_to_optimal": "deltal/variance/cv_ratio_to_optimal",
    "scale_ratio": "deltal/bias/scale_ratio",
}
# deltal/variance/cv_ratio/<aggregator>: a baseline's CV ratio evaluated on the logged run's batches.
COUNTERFACTUAL_PREFIX = "deltal/variance/cv_ratio/"
EXPECTED_CURVES = ("response_length", "entropy")


def _file_label(text: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in text)


def plot_lines(curves: pd.DataFrame, value: str, title: str, ylabel: str, path: Path, smooth: int = 1) -> Path:
    """One line per method (mean over runs per step, rolling mean over ``smooth`` points) saved to ``path``."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for method in method_order(list(curves["method"].unique())):
        series = curves[curves["method"] == method].groupby("step")[value].mean().sort_index()
        if smooth > 1:
            series = series.rolling(smooth, min_periods=1).mean()
        axes.plot(series.index, series.values, marker="o" if len(series) <= 40 else None, label=method_label(method))
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=120)
    return path


def plot_curves(
    frame: pd.DataFrame,
    task: str,
    out_dir: str | Path,
    k: int = 8,
    counts: Mapping[str, int] = MATH_QUESTION_COUNTS,
    var: str | None = None,
    smooth: int = 1,
) -> list[Path]:
    """Write the score and training-quantity PNGs of every model of ``task``; return the paths written."""
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1 (points in the rolling mean), got {smooth}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scores = task_scores(frame, task, k=k, counts=counts, var=var)
    of_task = frame[frame["task"] == task]
    score_label = f"Avg@{k}" if task == "countdown" else f"weighted Avg@{k}"
    written = []
    for model in sorted(scores["model"].unique()):
        stem = f"{_file_label(task)}__{_file_label(model)}"
        written.append(
            plot_lines(
                scores[scores["model"] == model],
                "score",
                f"{task} {model}: {score_label}",
                score_label,
                out_dir / f"{stem}__score.png",
            )
        )
        of_model = of_task[of_task["model"] == model]
        for quantity, metric in TRAINING_CURVES.items():
            curve = of_model[of_model["metric"] == metric]
            if curve.empty:
                log = logger.warning if quantity in EXPECTED_CURVES else logger.info
                log("no %s in the %s/%s runs; skipping its plot", metric, task, model)
                continue
            written.append(
                plot_lines(
                    curve, "value", f"{task} {model}: {metric}", metric, out_dir / f"{stem}__{quantity}.png", smooth
                )
            )
        counterfactual = of_model[of_model["metric"].str.startswith(COUNTERFACTUAL_PREFIX)]
        if not counterfactual.empty:
            # plot_lines draws one line per "method": here, per aggregator evaluated on every run's batches
            by_aggregator = counterfactual.assign(
                method=counterfactual["metric"].str.removeprefix(COUNTERFACTUAL_PREFIX)
            )
            written.append(
                plot_lines(
                    by_aggregator,
                    "value",
                    f"{task} {model}: CV / CV of ΔL(α=1) on the logged batches",
                    "CV ratio (1 = minimum)",
                    out_dir / f"{stem}__cv_ratio_by_aggregator.png",
                    smooth,
                )
            )
    return written


def plot_reward_and_length(
    reward: list[tuple[int, float]],
    length: list[tuple[int, float]],
    validation: list[tuple[int, float]],
    path: Path,
    title: str,
    smooth: int = 5,
) -> Path:
    """Two panels for one run: reward (raw, ``smooth``-step moving average, validation accuracy) and mean length."""
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    reward_axes, length_axes = figure.subplots(1, 2)
    steps, rewards = zip(*sorted(reward), strict=True)
    reward_axes.plot(steps, rewards, color="0.75", label="batch reward")
    averaged = pd.Series(rewards).rolling(smooth, min_periods=1).mean()
    reward_axes.plot(steps, averaged, color="C0", label=f"{smooth}-step average")
    if validation:
        val_steps, val_acc = zip(*sorted(validation), strict=True)
        reward_axes.plot(val_steps, val_acc, "o--", color="C3", label="validation accuracy")
    reward_axes.set(xlabel="training step", ylabel="reward", title="reward")
    reward_axes.legend(loc="lower right", fontsize=8)
    if length:
        length_steps, lengths = zip(*sorted(length), strict=True)
        length_axes.plot(length_steps, lengths, color="C2")
    length_axes.set(xlabel="training step", ylabel="tokens", title="mean response length")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
