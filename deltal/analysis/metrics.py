"""Evaluation metrics from the tidy run table: Avg@k, Pass@k, dataset-weighted averages, best checkpoint, monotonicity.

verl 0.9.1 (``process_validation_metrics`` + ``_val_metrics_update``) logs, per data source and per variable
(``reward`` always; ``acc``/``score``/... when the reward function returns them), averaged over prompts:

* ``mean@N``: the mean over a prompt's N samples, so ``mean@8`` is the paper's **Avg@8**;
* ``best@n/mean``: a bootstrap estimate (1000 draws of n of the N samples) of the best-of-n score, so with binary
  rewards ``best@8/mean`` is the paper's **Pass@8** (as verl estimates it).

Both go to ``val-core/<data_source>/<var>/...`` for verl's core variable (``acc`` if present, else ``reward``) at
the largest n, and to ``val-aux/...`` otherwise. We read the ``val-core`` variable unless ``var`` is given.

The bootstrap draws with replacement, so ``best@8/mean`` is biased low (one correct sample of 8 reads about 0.66).
Exact rows computed from verl's validation sample dumps (`deltal.analysis.generations`: ``exact/<data_source>/
<var>/mean@k``, ``.../pass@k``, ``exact/<data_source>/questions``) are preferred wherever they exist for a run,
step and data source; verl's keys fill the rest, with a warning when Pass@k comes from the bootstrap.

Paper rules (appendix A.2): Math scores are the question-count-weighted average of the four test sets' Avg@8;
the best checkpoint is the evaluation with the highest Avg@8 (CountDown) or weighted Avg@8 (Math); the
monotonicity score is the Pearson correlation between step and score over the evaluations every 50 steps.
Library module; the command line is ``python -m deltal.analysis``.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

# Questions per Math test set (paper section 4.1); the weights of the weighted average.
# Ordered as the columns of paper Table 4.
MATH_QUESTION_COUNTS: dict[str, int] = {"minerva": 272, "aime2024": 30, "math500": 500, "amc": 83}
COUNTDOWN_DATASET = "countdown"
TASKS = ("countdown", "math")
# When no val-core entry exists (e.g. a custom logger), prefer these variables in this order.
FALLBACK_VARIABLES = ("acc", "score", "reward")
SCORE_COLUMNS = ["run", "task", "method", "model", "step"]

_VALIDATION_PATTERN = re.compile(
    r"^val-(?P<section>core|aux)/(?P<dataset>.+)/(?P<var>[^/]+)/(?:mean@(?P<mean_n>\d+)|best@(?P<best_n>\d+)/mean)$"
)
_EXACT_PATTERN = re.compile(r"^exact/(?P<dataset>.+)/(?P<var>[^/]+)/(?P<kind>mean|pass)@(?P<n>\d+)$")
_EXACT_QUESTIONS_PATTERN = re.compile(r"^exact/(?P<dataset>.+)/questions$")
# Exact rows use the reward's acc, or its score when it returned no acc.
EXACT_VARIABLES = ("acc", "score")
SCORE_FRAME_COLUMNS = SCORE_COLUMNS + ["dataset", "value", "questions", "source"]


@dataclass(frozen=True)
class ValidationMetric:
    """One parsed verl validation metric name."""

    section: str  # "core" or "aux"
    dataset: str  # data_source
    var: str  # reward variable: acc, reward, score, ...
    kind: str  # "avg" (mean@n) or "pass" (best@n/mean)
    n: int


def parse_validation_metric(name: str) -> ValidationMetric | None:
    """Parse ``val-core/<ds>/<var>/mean@N`` or ``.../best@N/mean``; None for any other metric."""
    match = _VALIDATION_PATTERN.match(name)
    if match is None:
        return None
    kind, n = ("avg", match["mean_n"]) if match["mean_n"] is not None else ("pass", match["best_n"])
    return ValidationMetric(match["section"], match["dataset"], match["var"], kind, int(n))


def _choose_variable(candidates: list[ValidationMetric], var: str | None) -> str | None:
    """verl's core variable, or the requested one, or the first fallback variable present."""
    variables = {metric.var for metric in candidates}
    if var is not None:
        return var if var in variables else None
    core = sorted({metric.var for metric in candidates if metric.section == "core"})
    if core:
        return core[0]
    return next((name for name in FALLBACK_VARIABLES if name in variables), None)


def parse_exact_metric(name: str) -> tuple[str, str, str, int] | None:
    """Parse ``exact/<ds>/<var>/mean@k`` or ``.../pass@k`` into (dataset, var, kind "avg"/"pass", k); else None."""
    match = _EXACT_PATTERN.match(name)
    if match is None:
        return None
    return match["dataset"], match["var"], "avg" if match["kind"] == "mean" else "pass", int(match["n"])


def _exact_validation_scores(frame: pd.DataFrame, kind: str, k: int, var: str | None) -> pd.DataFrame:
    """Scores from exact rows (``--generations``), with the counted questions; empty when there are none.

    Raises ValueError when a dump covers a run's step but holds fewer than k samples per question.
    """
    parsed = {name: parse_exact_metric(name) for name in frame["metric"].unique()}
    parsed = {name: fields for name, fields in parsed.items() if fields is not None and fields[2] == kind}
    if not parsed:
        return pd.DataFrame(columns=SCORE_FRAME_COLUMNS)
    selected = frame[frame["metric"].isin(parsed)]
    fields = selected["metric"].map(parsed)
    selected = selected.assign(
        dataset=fields.map(lambda item: item[0]),
        var=fields.map(lambda item: item[1]),
        n=fields.map(lambda item: item[3]),
    )
    pieces = []
    for (run, dataset), group in selected.groupby(["run", "dataset"]):
        present = set(group["var"])
        wanted = [var] if var is not None else list(EXACT_VARIABLES)
        chosen = next((name for name in wanted if name in present), None)
        if chosen is None:
            continue  # the requested variable is not in the dump: verl's keys answer for this run
        of_var = group[group["var"] == chosen]
        at_k = of_var[of_var["n"] == k]
        short = sorted(set(of_var["step"]) - set(at_k["step"]))
        if short:
            largest = int(of_var.loc[of_var["step"].isin(short), "n"].max())
            raise ValueError(
                f"run {run!r}: the validation dump of {dataset} at step(s) {short} has at most {largest} samples per "
                f"question, fewer than k={k}; pass --k {largest} or validate with "
                f"actor_rollout_ref.rollout.val_kwargs.n={k}"
            )
        pieces.append(at_k)
    if not pieces:
        return pd.DataFrame(columns=SCORE_FRAME_COLUMNS)
    scores = pd.concat(pieces, ignore_index=True)
    questions = frame[frame["metric"].str.match(_EXACT_QUESTIONS_PATTERN.pattern)]
    questions = questions.assign(dataset=questions["metric"].str.extract(_EXACT_QUESTIONS_PATTERN.pattern)["dataset"])
    scores = scores.merge(
        questions.loc[:, ["run", "step", "dataset", "value"]].rename(columns={"value": "questions"}),
        on=["run", "step", "dataset"],
        how="left",
    )
    return scores.assign(source="exact").loc[:, SCORE_FRAME_COLUMNS]


def _verl_validation_scores(
    frame: pd.DataFrame, kind: str, k: int, var: str | None, covered: set[tuple[str, int, str]]
) -> pd.DataFrame:
    """Scores from verl's aggregated keys for the (run, step, dataset) not in ``covered``; empty when none."""
    parsed = {name: parse_validation_metric(name) for name in frame["metric"].unique()}
    parsed = {name: metric for name, metric in parsed.items() if metric is not None and metric.kind == kind}
    selected = frame[frame["metric"].isin(parsed)]
    if selected.empty:
        return pd.DataFrame(columns=SCORE_FRAME_COLUMNS)
    datasets = selected["metric"].map(lambda name: parsed[name].dataset)
    keep = [key not in covered for key in zip(selected["run"], selected["step"], datasets, strict=True)]
    selected, datasets = selected[keep], datasets[keep]
    pieces = []
    for (run, dataset), group in selected.groupby([selected["run"], datasets]):
        candidates = [parsed[name] for name in group["metric"].unique()]
        chosen_var = _choose_variable(candidates, var)
        if chosen_var is None:
            raise ValueError(
                f"run {run!r} logs variables {sorted({m.var for m in candidates})} for {dataset!r}, not {var!r}; "
                "pass one of those as --var"
            )
        wanted = [name for name, metric in parsed.items() if metric.dataset == dataset and metric.var == chosen_var]
        available = sorted({parsed[name].n for name in wanted if name in set(group["metric"])})
        at_k = [name for name in wanted if parsed[name].n == k]
        rows = group[group["metric"].isin(at_k)]
        if rows.empty:
            raise ValueError(
                f"run {run!r} has no {kind}@{k} for {dataset}/{chosen_var} (logged n: {available}); "
                f"pass --k with one of those or validate with actor_rollout_ref.rollout.val_kwargs.n={k}"
            )
        pieces.append(rows.assign(dataset=dataset))
    if not pieces:
        return pd.DataFrame(columns=SCORE_FRAME_COLUMNS)
    scores = pd.concat(pieces, ignore_index=True).assign(questions=math.nan, source="verl")
    return scores.loc[:, SCORE_FRAME_COLUMNS]


def validation_scores(frame: pd.DataFrame, kind: str, k: int = 8, var: str | None = None) -> pd.DataFrame:
    """Avg@k (``kind="avg"``) or Pass@k (``kind="pass"``) per run, step and dataset.

    Exact rows (from ``export --generations``) are used wherever they exist for a run, step and dataset; verl's
    ``val-core`` keys fill the rest. Returns columns run, task, method, model, step, dataset, value, questions
    (counted questions; NaN for verl's keys) and source (``exact`` or ``verl``). Raises ValueError, naming what was
    logged, when a run has validation metrics but none at k or for ``var``.
    """
    if kind not in ("avg", "pass"):
        raise ValueError(f"kind must be 'avg' (Avg@k) or 'pass' (Pass@k), got {kind!r}")
    exact = _exact_validation_scores(frame, kind, k, var)
    covered = set(zip(exact["run"], exact["step"], exact["dataset"], strict=True))
    verl = _verl_validation_scores(frame, kind, k, var, covered)
    if exact.empty and verl.empty:
        raise ValueError(
            "no validation metrics (val-core/<data_source>/<var>/mean@N, or exact/... rows from export "
            "--generations) in the table; export logs of runs with trainer.test_freq > 0"
        )
    if kind == "pass" and not verl.empty:
        logger.warning(
            "Pass@%d of runs %s comes from verl's best@%d/mean, a bootstrap that draws with replacement and is "
            "biased low (1 correct of 8 reads ~0.66, not 1). For the exact value train with "
            "trainer.validation_data_dir=DIR and export with --generations RUN=DIR",
            k,
            sorted(verl["run"].unique()),
            k,
        )
    scores = pd.concat([piece for piece in (exact, verl) if not piece.empty], ignore_index=True)
    scores["step"] = scores["step"].astype(int)
    return scores.sort_values(SCORE_COLUMNS + ["dataset"]).reset_index(drop=True)


def weighted_average(scores: Mapping[str, float], counts: Mapping[str, int] = MATH_QUESTION_COUNTS) -> float:
    """Question-count-weighted mean of per-dataset scores: Σ n_d s_d / Σ n_d over the datasets in ``counts``.

    Raises ValueError if a dataset of ``counts`` has no score, or a count is not positive.
    """
    missing = [dataset for dataset in counts if dataset not in scores]
    if missing:
        raise ValueError(
            f"no score for {missing} (have {sorted(scores)}); evaluate on every dataset or override the "
            "counts (--counts dataset=questions,...)"
        )
    if any(count <= 0 for count in counts.values()):
        raise ValueError(f"question counts must be positive, got {dict(counts)}")
    total = sum(counts.values())
    return sum(count * scores[dataset] for dataset, count in counts.items()) / total


def countdown_dataset(datasets: list[str], run: str) -> str:
    """The single CountDown validation set of a run: the only one logged, else the one named ``countdown``."""
    if len(datasets) == 1:
        return datasets[0]
    if COUNTDOWN_DATASET in datasets:
        return COUNTDOWN_DATASET
    raise ValueError(f"run {run!r} validates on {datasets}; expected one CountDown set (or one named 'countdown')")


def task_scores(
    frame: pd.DataFrame,
    task: str,
    k: int = 8,
    counts: Mapping[str, int] = MATH_QUESTION_COUNTS,
    var: str | None = None,
) -> pd.DataFrame:
    """The paper's per-evaluation score of every run of ``task``: columns run, task, method, model, step, score.

    CountDown: Avg@k on its test set. Math: the question-count-weighted Avg@k over ``counts``' datasets, weighted by
    the questions counted in the validation dumps where exact rows exist, else by ``counts``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    of_task = frame[frame["task"] == task]
    if of_task.empty:
        raise ValueError(f"no runs of task {task!r} in the table (tasks present: {sorted(frame['task'].unique())})")
    avg = validation_scores(of_task, "avg", k=k, var=var)
    rows = []
    recounted: dict[str, set[int]] = defaultdict(set)
    for keys, group in avg.groupby(SCORE_COLUMNS):
        per_dataset = dict(zip(group["dataset"], group["value"], strict=True))
        counted = {
            dataset: int(questions)
            for dataset, questions in zip(group["dataset"], group["questions"], strict=True)
            if not pd.isna(questions)
        }
        if task == "countdown":
            dataset = countdown_dataset(sorted(avg.loc[avg["run"] == keys[0], "dataset"].unique()), keys[0])
            if dataset not in per_dataset:
                continue
            score = per_dataset[dataset]
        else:
            weights = {dataset: counted.get(dataset, count) for dataset, count in counts.items()}
            for dataset, count in counts.items():
                if counted.get(dataset, count) != count:
                    recounted[dataset].add(counted[dataset])
            try:
                score = weighted_average(per_dataset, weights)
            except ValueError as err:
                raise ValueError(f"run {keys[0]!r} step {keys[4]}: {err}") from err
        rows.append((*keys, score))
    if recounted:
        logger.warning(
            "weighting Math datasets by the questions counted in the validation dumps, which differ from the "
            "configured counts: %s",
            {dataset: f"{sorted(found)} counted, {counts[dataset]} configured" for dataset, found in recounted.items()},
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS + ["score"])


def best_checkpoint(scores: pd.DataFrame) -> pd.DataFrame:
    """Per run, the evaluation with the highest score (the earliest step on ties); one row per run."""
    if scores.empty:
        raise ValueError("no evaluations to choose a best checkpoint from")
    ordered = scores.sort_values(["run", "score", "step"], ascending=[True, False, True])
    return ordered.groupby("run", as_index=False).head(1).reset_index(drop=True)


def monotonicity_score(steps: np.ndarray | list[int], scores: np.ndarray | list[float], every: int = 50) -> float:
    """Pearson correlation of step and score over the evaluations at multiples of ``every`` (step 0 included).

    Returns NaN (and logs a warning) when it is undefined: fewer than 2 such evaluations or a constant score.
    """
    if every <= 0:
        raise ValueError(f"every must be a positive number of steps, got {every}")
    steps = np.asarray(steps, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if steps.shape != scores.shape:
        raise ValueError(f"steps {steps.shape} and scores {scores.shape} must have the same shape")
    on_grid = np.mod(steps, every) == 0
    steps, scores = steps[on_grid], scores[on_grid]
    if steps.size < 2 or np.ptp(scores) == 0 or np.ptp(steps) == 0:
        logger.warning(
            "monotonicity undefined for %d evaluations every %d steps (constant or too few); reporting NaN",
            steps.size,
            every,
        )
        return math.nan
    return float(np.corrcoef(steps, scores)[0, 1])


def monotonicity_scores(scores: pd.DataFrame, every: int = 50) -> pd.DataFrame:
    """`monotonicity_score` per run: columns run, task, method, model, monotonicity."""
    rows = []
    for (run, task, method, model), group in scores.groupby(["run", "task", "method", "model"]):
        rows.append((run, task, method, model, monotonicity_score(group["step"], group["score"], every)))
    return pd.DataFrame(rows, columns=["run", "task", "method", "model", "monotonicity"])


def parse_counts(text: str) -> dict[str, int]:
    """Parse ``--counts math500=500,aime2024=30`` into a dict, or raise ValueError naming the format."""
    counts = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, number = item.partition("=")
        if not sep or not number.strip().isdigit() or int(number) <= 0:
            raise ValueError(f"bad count {item!r}; write dataset=questions pairs, e.g. math500=500,aime2024=30")
        counts[name.strip()] = int(number)
    if not counts:
        raise ValueError("--counts is empty; write dataset=questions pairs, e.g. math500=500,aime2024=30")
    return counts
