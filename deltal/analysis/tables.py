"""Markdown tables shaped like the paper's Table 2 (CountDown), Table 4 (Math) and Table 5 (monotonicity).

Every cell comes from the best checkpoint of a run (`deltal.analysis.metrics.best_checkpoint`); runs that differ
only in seed are averaged and shown as ``mean ± std (n=...)``. The best value of each column is bold.
Command line: ``python -m deltal.analysis table --kind countdown|math|monotonicity runs.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from deltal.analysis.metrics import (
    MATH_QUESTION_COUNTS,
    best_checkpoint,
    countdown_dataset,
    monotonicity_scores,
    task_scores,
    validation_scores,
)
from deltal.verl_adapter.methods import METHODS

# Paper names of the methods (section 4.1), in the paper's row order, from the method registry.
METHOD_LABELS: dict[str, str] = {name: spec.label for name, spec in METHODS.items()}
DATASET_LABELS: dict[str, str] = {"minerva": "Minerva", "aime2024": "AIME2024", "math500": "MATH500", "amc": "AMC"}
TABLE_KINDS = ("countdown", "math", "monotonicity")


def method_label(method: str) -> str:
    """Paper label of a method; ``delta_l_alpha0.75``-style names keep their suffix; unknown names pass through."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    if method.startswith("delta_l"):
        return f"{METHOD_LABELS['delta_l']} ({method.removeprefix('delta_l').strip('_')})"
    return method


def method_order(methods: list[str]) -> list[str]:
    """Known methods in paper order, then ΔL variants, then anything else alphabetically."""
    known = list(METHOD_LABELS)

    def key(method: str) -> tuple[int, str]:
        if method in known:
            return (known.index(method), "")
        return (len(known), method) if method.startswith("delta_l") else (len(known) + 1, method)

    return sorted(methods, key=key)


def format_cell(values: list[float]) -> str:
    """One table cell: the value, or mean ± std over seeds; ``n/a`` when undefined."""
    finite = [value for value in values if not math.isnan(value)]
    if not finite:
        return "n/a"
    if len(values) == 1:
        return f"{finite[0]:.3f}"
    return f"{np.mean(finite):.3f} ± {np.std(finite):.3f} (n={len(finite)})"


def _cell_mean(values: list[float]) -> float:
    finite = [value for value in values if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def render_markdown(header: list[str], rows: list[list[list[float] | str]], bold_best: bool = True) -> str:
    """Render rows whose first entry is a label and the others lists of per-seed values (or pre-formatted text).

    The highest mean of each numeric column is bold; rows that are all text (section headers) are kept as is.
    """
    best = {}
    if bold_best:
        for column in range(1, len(header)):
            means = [_cell_mean(row[column]) for row in rows if isinstance(row[column], list)]
            finite = [mean for mean in means if not math.isnan(mean)]
            if len(finite) > 1:
                best[column] = max(finite)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row[0])]
        for column, entry in enumerate(row[1:], start=1):
            if isinstance(entry, str):
                cells.append(entry)
                continue
            text = format_cell(entry)
            if column in best and _cell_mean(entry) == best[column]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _values(frame: pd.DataFrame, method: str, model: str, column: str) -> list[float]:
    selected = frame[(frame["method"] == method) & (frame["model"] == model)]
    return [float(value) for value in selected[column]]


def countdown_table(frame: pd.DataFrame, k: int = 8, var: str | None = None) -> str:
    """Table 2: Avg@k and Pass@k at each run's best Avg@k checkpoint, one column pair per model."""
    best = best_checkpoint(task_scores(frame, "countdown", k=k, var=var))
    passes = validation_scores(frame[frame["task"] == "countdown"], "pass", k=k, var=var)
    pass_values = []
    for _, row in best.iterrows():
        of_run = passes[passes["run"] == row["run"]]
        dataset = countdown_dataset(sorted(of_run["dataset"].unique()), row["run"])
        at_step = of_run[(of_run["step"] == row["step"]) & (of_run["dataset"] == dataset)]["value"]
        if at_step.empty:
            raise ValueError(f"run {row['run']!r} logged Avg@{k} but not Pass@{k} at step {row['step']}")
        pass_values.append(float(at_step.iloc[0]))
    best = best.assign(pass_at_k=pass_values)
    models = sorted(best["model"].unique())
    header = ["Method"] + [f"{model} {name}@{k}" for model in models for name in ("Avg", "Pass")]
    rows = []
    for method in method_order(list(best["method"].unique())):
        row = [method_label(method)]
        for model in models:
            row += [_values(best, method, model, "score"), _values(best, method, model, "pass_at_k")]
        rows.append(row)
    return render_markdown(header, rows)


def math_table(
    frame: pd.DataFrame, k: int = 8, counts: Mapping[str, int] = MATH_QUESTION_COUNTS, var: str | None = None
) -> str:
    """Table 4: per-dataset Avg@k, weighted and plain averages at each run's best weighted-Avg@k checkpoint."""
    best = best_checkpoint(task_scores(frame, "math", k=k, counts=counts, var=var))
    avg = validation_scores(frame[frame["task"] == "math"], "avg", k=k, var=var)
    datasets = list(counts)
    merged = best.merge(avg, on=["run", "task", "method", "model", "step"])
    wide = merged.pivot_table(index="run", columns="dataset", values="value", aggfunc="first")
    best = best.set_index("run").join(wide[datasets]).reset_index()
    best["average"] = best[datasets].mean(axis=1)
    header = ["Method"] + [DATASET_LABELS.get(name, name) for name in datasets] + ["W.Average", "Average"]
    # One section per model (bold best within it, as the paper does); a label row opens each section.
    lines: list[str] = []
    for model in sorted(best["model"].unique()):
        of_model = best[best["model"] == model]
        rows: list[list] = [[f"**{model}**"] + [""] * (len(header) - 1)]
        for method in method_order(list(of_model["method"].unique())):
            rows.append(
                [method_label(method)]
                + [_values(of_model, method, model, column) for column in datasets + ["score", "average"]]
            )
        section = render_markdown(header, rows).splitlines()
        lines.extend(section if not lines else section[2:])
    return "\n".join(lines) + "\n"


def monotonicity_table(
    frame: pd.DataFrame,
    k: int = 8,
    counts: Mapping[str, int] = MATH_QUESTION_COUNTS,
    every: int = 50,
    var: str | None = None,
) -> str:
    """Table 5: Pearson correlation of step and score (evaluations every ``every`` steps), per task and model."""
    pieces = []
    for task, label in (("countdown", "CD"), ("math", "Math")):
        if (frame["task"] == task).any():
            scores = task_scores(frame, task, k=k, counts=counts, var=var)
            pieces.append(monotonicity_scores(scores, every=every).assign(label=label))
    if not pieces:
        raise ValueError("no countdown or math runs in the table; check the run names ({task}__{method}__...)")
    monotonic = pd.concat(pieces, ignore_index=True)
    columns = [(label, model) for label in ("CD", "Math") for model in sorted(monotonic["model"].unique())]
    columns = [
        (label, model)
        for label, model in columns
        if ((monotonic["label"] == label) & (monotonic["model"] == model)).any()
    ]
    header = ["Method"] + [f"{label}; {model}" for label, model in columns]
    rows = []
    for method in method_order(list(monotonic["method"].unique())):
        row = [method_label(method)]
        for label, model in columns:
            selected = monotonic[
                (monotonic["method"] == method) & (monotonic["model"] == model) & (monotonic["label"] == label)
            ]
            row.append([float(value) for value in selected["monotonicity"]])
        rows.append(row)
    return render_markdown(header, rows)


def build_table(
    kind: str,
    frame: pd.DataFrame,
    k: int = 8,
    counts: Mapping[str, int] = MATH_QUESTION_COUNTS,
    every: int = 50,
    var: str | None = None,
) -> str:
    """Dispatch on ``kind`` (one of `TABLE_KINDS`)."""
    if kind == "countdown":
        return countdown_table(frame, k=k, var=var)
    if kind == "math":
        return math_table(frame, k=k, counts=counts, var=var)
    if kind == "monotonicity":
        return monotonicity_table(frame, k=k, counts=counts, every=every, var=var)
    raise ValueError(f"unknown table kind {kind!r}; choose one of {TABLE_KINDS}")
