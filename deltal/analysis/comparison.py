"""Method comparison over seeds from the tidy run table: a per-method summary table and curves with a band over seeds.

Input: the tidy table of ``deltal.analysis.logs`` (one row per run, step, metric), holding several methods and seeds
of one task. Per method (seeds averaged):

* curves, one PNG per quantity, mean line and a ±1 std band over seeds: held-out accuracy (verl's validation
  ``val-core/<data_source>/<var>/mean@k``), batch reward (``critic/score/mean``), mean response length
  (``response_length/mean``) and the spread of the ΔL weights (``deltal/adv_weight/std``; 0 for the baselines,
  whose weights are all 1);
* a table: best held-out accuracy (mean ± std over seeds), the plateau (mean of each run's last
  ``plateau_evals`` evaluations), steps to reach a target accuracy (mean over the seeds that reached it, and how
  many did), the monotonicity score (paper appendix A.2: Pearson correlation of step and held-out accuracy over the
  evaluations), the final mean response length (mean of the last ``final_window`` training steps) and the batch's
  response-length p10 / p50 / p90 (``deltal/response_length/p*``) over the first and the last ``final_window``
  steps;
* Welch's t test of each method's best and plateau accuracy against a reference method's (ΔL by default): t and
  the two-sided p value over seeds (unequal variances), so a gap can be read against the seed noise;
* what ΔL changes on the run's own batches: the predicted CV ratio of Dr. GRPO Norm (equal to DAPO Norm's under
  the paper's model) to ΔL at α = 1 (``deltal/variance/cv_ratio/dr_grpo_norm``, from each step's lengths alone,
  `deltal.algorithm.telemetry`), averaged over the first ``final_window`` and the last ``cv_window`` steps, and the
  actor's
  gradient norm before clipping (``actor/grad_norm``) averaged over all steps. Only ΔL and Dr. GRPO Norm share an
  expected gradient (∇J/M), so only their gradient norms compare; DAPO Norm's scale is G/ΣL.

Used by ``python -m deltal.experiments.compare``; library module (no command line of its own).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from deltal.analysis.metrics import monotonicity_score, validation_scores
from deltal.analysis.tables import method_label, method_order

logger = logging.getLogger(__name__)

# Quantity -> (logged metric, axis label) of the training curves; accuracy comes from validation_scores.
TRAINING_QUANTITIES: dict[str, tuple[str, str]] = {
    "batch_reward": ("critic/score/mean", "batch reward (mean over responses)"),
    "response_length": ("response_length/mean", "mean response length (tokens)"),
    "adv_weight_spread": ("deltal/adv_weight/std", "std of ΔL weights in the batch"),
    "variance_ratio": ("deltal/variance/cv_ratio/dr_grpo_norm", "predicted CV: Dr. GRPO Norm / ΔL (α = 1)"),
}
ACCURACY = "heldout_accuracy"
GRAD_NORM = "actor/grad_norm"
LENGTH_QUANTILES = ("p10", "p50", "p90")
LENGTH_QUANTILE_METRIC = "deltal/response_length/{}"
# The method every other one is tested against (Welch's t on best and plateau accuracy).
REFERENCE_METHOD = "delta_l"


@dataclass(frozen=True)
class SummaryRow:
    """One method's figures; the per-seed lists keep the spread for mean ± std."""

    method: str
    seeds: int
    best_accuracy: list[float]
    plateau_accuracy: list[float]
    steps_to_target: list[float]  # NaN for a seed that never reached the target
    monotonicity: list[float]
    final_length: list[float]
    cv_ratio_first: list[float]  # NaN for a run that logged no variance telemetry
    cv_ratio_last: list[float]
    grad_norm: list[float]
    length_first: list[tuple[float, float, float]]  # per run: (p10, p50, p90), NaN without length quantiles
    length_last: list[tuple[float, float, float]]


@dataclass(frozen=True)
class WelchTest:
    """Welch's t test of one method against the reference on one per-seed figure (NaN when a side has < 2 seeds)."""

    method: str
    figure: str
    t: float
    p: float


def _mean_of(values: pd.Series) -> float:
    return float(values.mean()) if not values.empty else math.nan


def _run_values(curve: pd.DataFrame, run: str) -> pd.Series:
    return curve[curve["run"] == run].sort_values("step")["value"]


def accuracy_curves(frame: pd.DataFrame, k: int = 1) -> pd.DataFrame:
    """Held-out accuracy per run and step: columns run, method, step, value (one validation set per run)."""
    scores = validation_scores(frame, "avg", k=k)
    per_run = scores.groupby("run")["dataset"].nunique()
    if (per_run > 1).any():
        raise ValueError(f"runs {sorted(per_run[per_run > 1].index)} validate on several data sets; compare one task")
    return scores.loc[:, ["run", "method", "step", "value"]]


def metric_curves(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One logged training metric per run and step: columns run, method, step, value."""
    return frame.loc[frame["metric"] == metric, ["run", "method", "step", "value"]]


def steps_to_reach(curve: pd.DataFrame, target: float) -> float:
    """The first evaluated step whose value is >= ``target``; NaN when none is."""
    reached = curve[curve["value"] >= target]
    return float(reached["step"].min()) if not reached.empty else math.nan


def summarise(
    frame: pd.DataFrame,
    target: float,
    k: int = 1,
    final_window: int = 5,
    cv_window: int = 10,
    plateau_evals: int = 3,
) -> list[SummaryRow]:
    """The per-method summary (see the module docstring), methods in the paper's order."""
    if min(final_window, cv_window, plateau_evals) < 1:
        raise ValueError(
            f"final_window, cv_window and plateau_evals must be >= 1, got {final_window}, {cv_window}, {plateau_evals}"
        )
    accuracy = accuracy_curves(frame, k)
    lengths = metric_curves(frame, TRAINING_QUANTITIES["response_length"][0])
    cv_ratios = metric_curves(frame, TRAINING_QUANTITIES["variance_ratio"][0])
    grad_norms = metric_curves(frame, GRAD_NORM)
    quantiles = [metric_curves(frame, LENGTH_QUANTILE_METRIC.format(name)) for name in LENGTH_QUANTILES]
    rows = []
    for method in method_order(list(accuracy["method"].unique())):
        runs = sorted(accuracy.loc[accuracy["method"] == method, "run"].unique())
        best, plateau, reach, monotonic, final = [], [], [], [], []
        cv_first, cv_last, grad, length_first, length_last = [], [], [], [], []
        for run in runs:
            curve = accuracy[accuracy["run"] == run].sort_values("step")
            best.append(float(curve["value"].max()))
            plateau.append(float(curve["value"].tail(plateau_evals).mean()))
            reach.append(steps_to_reach(curve, target))
            # Every evaluation counts (the paper's grid of 50 steps is the run's own test_freq here).
            monotonic.append(monotonicity_score(curve["step"], curve["value"], every=1))
            final.append(_mean_of(_run_values(lengths, run).tail(final_window)))
            cv_first.append(_mean_of(_run_values(cv_ratios, run).head(final_window)))
            cv_last.append(_mean_of(_run_values(cv_ratios, run).tail(cv_window)))
            grad.append(_mean_of(_run_values(grad_norms, run)))
            length_first.append(tuple(_mean_of(_run_values(q, run).head(final_window)) for q in quantiles))
            length_last.append(tuple(_mean_of(_run_values(q, run).tail(final_window)) for q in quantiles))
        rows.append(
            SummaryRow(
                method,
                len(runs),
                best,
                plateau,
                reach,
                monotonic,
                final,
                cv_first,
                cv_last,
                grad,
                length_first,
                length_last,
            )
        )
    return rows


def welch(ours: list[float], theirs: list[float]) -> tuple[float, float]:
    """Welch's t of ``ours`` against ``theirs`` and its two-sided p value; NaN, NaN when a side has < 2 values."""
    from scipy.stats import ttest_ind

    if len(ours) < 2 or len(theirs) < 2:
        return math.nan, math.nan
    with warnings.catch_warnings():
        # scipy warns when one side's seeds agree exactly (zero variance); Welch's t is still defined.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ttest_ind(ours, theirs, equal_var=False)
    return float(result.statistic), float(result.pvalue)


def welch_tests(rows: list[SummaryRow], reference: str = REFERENCE_METHOD) -> list[WelchTest]:
    """Welch's t of every other method's best and plateau accuracy against ``reference``'s (empty without it)."""
    by_method = {row.method: row for row in rows}
    if reference not in by_method:
        return []
    tests = []
    for row in rows:
        if row.method == reference:
            continue
        for figure in ("best_accuracy", "plateau_accuracy"):
            t, p = welch(getattr(row, figure), getattr(by_method[reference], figure))
            tests.append(WelchTest(row.method, figure, t, p))
    return tests


def mean_std(values: list[float], digits: int) -> str:
    """``mean ± std`` over the finite values (population std, as over seeds), the value alone for one run."""
    finite = [value for value in values if not math.isnan(value)]
    if not finite:
        return "n/a"
    if len(finite) == 1:  # one run, or one run that logged the figure: no spread to show
        return f"{finite[0]:.{digits}f}"
    return f"{np.mean(finite):.{digits}f} ± {np.std(finite):.{digits}f}"


def _quantile_cell(per_run: list[tuple[float, float, float]]) -> str:
    finite = [values for values in per_run if not any(math.isnan(value) for value in values)]
    if not finite:
        return "n/a"
    return "/".join(f"{value:.0f}" for value in np.mean(finite, axis=0))


def welch_text(t: float, p: float) -> str:
    """A Welch test as a table cell; n/a when it was not defined (a side with < 2 seeds)."""
    return "n/a" if math.isnan(t) else f"t = {t:.2f}, p = {p:.2f}"


def _welch_cell(tests: dict[tuple[str, str], WelchTest], method: str, figure: str) -> str:
    test = tests.get((method, figure))
    return "–" if test is None else welch_text(test.t, test.p)


def summary_frame(rows: list[SummaryRow], target: float, reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """The summary as text cells (mean ± std over seeds), one row per method, with Welch's t against ``reference``."""
    tests = {(test.method, test.figure): test for test in welch_tests(rows, reference)}
    records = []
    for row in rows:
        reached = [value for value in row.steps_to_target if not math.isnan(value)]
        steps = f"{np.mean(reached):.0f} ({len(reached)}/{row.seeds})" if reached else f"not reached (0/{row.seeds})"
        records.append(
            {
                "method": method_label(row.method),
                "seeds": row.seeds,
                "best_accuracy": mean_std(row.best_accuracy, 3),
                "plateau_accuracy": mean_std(row.plateau_accuracy, 3),
                f"steps_to_{target:g}": steps,
                "monotonicity": mean_std(row.monotonicity, 2),
                "final_length": mean_std(row.final_length, 1),
                "length_p10/p50/p90_first_to_last": f"{_quantile_cell(row.length_first)} → "
                f"{_quantile_cell(row.length_last)}",
                "cv_ratio_first_to_last": f"{mean_std(row.cv_ratio_first, 2)} → {mean_std(row.cv_ratio_last, 2)}",
                "grad_norm": mean_std(row.grad_norm, 4),
                f"welch_best_vs_{reference}": _welch_cell(tests, row.method, "best_accuracy"),
                f"welch_plateau_vs_{reference}": _welch_cell(tests, row.method, "plateau_accuracy"),
            }
        )
    return pd.DataFrame.from_records(records)


def to_markdown(table: pd.DataFrame) -> str:
    """A pandas frame of text cells as a markdown table (no optional dependency)."""
    header = [str(column) for column in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(str(value) for value in row) + " |")
    return "\n".join(lines) + "\n"


def plot_band(curves: pd.DataFrame, title: str, ylabel: str, path: Path) -> Path:
    """Per method: the mean over its runs per step, and a ±1 std band when it has several runs."""
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for index, method in enumerate(method_order(list(curves["method"].unique()))):
        of_method = curves[curves["method"] == method]
        stats = of_method.groupby("step")["value"].agg(["mean", "std", "count"]).sort_index()
        color = f"C{index}"
        runs = of_method["run"].nunique()
        axes.plot(
            stats.index,
            stats["mean"],
            color=color,
            label=f"{method_label(method)} (n={runs})",
            marker="o" if len(stats) <= 30 else None,
            markersize=3,
        )
        if runs > 1:
            spread = stats["std"].fillna(0.0)
            axes.fill_between(stats.index, stats["mean"] - spread, stats["mean"] + spread, color=color, alpha=0.2)
    axes.set_xlabel("training step")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def plot_comparison(frame: pd.DataFrame, out_dir: str | Path, title: str, k: int = 1) -> list[Path]:
    """Write accuracy, batch reward, response length and ΔL weight spread PNGs into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    written = [
        plot_band(
            accuracy_curves(frame, k), f"{title}: held-out accuracy", "held-out accuracy", out_dir / f"{ACCURACY}.png"
        )
    ]
    for quantity, (metric, label) in TRAINING_QUANTITIES.items():
        curves = metric_curves(frame, metric)
        if curves.empty:
            logger.warning("no %s in the runs; skipping %s.png", metric, quantity)
            continue
        written.append(plot_band(curves, f"{title}: {metric}", label, out_dir / f"{quantity}.png"))
    return written
