"""Mean ± std over seeds and Welch's t against ΔL, from figures kept one row per run.

``deltal compare`` tables the runs whose logs it holds. A comparison that grew over several sessions or machines
may keep only each run's figures (best and plateau accuracy, say) for its older runs; this tables them alike: a CSV
with a ``method`` and a ``seed`` column and one numeric column per figure, any other column (where a figure came
from) carried but not used. Library module; command line: ``python -m deltal.analysis seeds PER_RUN.csv``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from deltal.analysis.comparison import REFERENCE_METHOD, mean_std, welch, welch_text
from deltal.analysis.tables import method_label, method_order

KEY_COLUMNS = ("method", "seed")


def check_per_run(per_run: pd.DataFrame, figures: Sequence[str]) -> None:
    """Refuse a table the summary would misread: missing or non-numeric columns, a run listed twice."""
    missing = [column for column in (*KEY_COLUMNS, *figures) if column not in per_run.columns]
    if missing:
        raise ValueError(
            f"the per-run table lacks the column(s) {missing}; it has {list(per_run.columns)} (one row per run: "
            "method, seed and one column per figure, or name the figures with --figures)"
        )
    for figure in figures:
        if not pd.api.types.is_numeric_dtype(per_run[figure]):
            raise ValueError(f"column {figure!r} is not numeric (first values {per_run[figure].head(3).tolist()})")
    repeated = per_run[per_run.duplicated(subset=list(KEY_COLUMNS), keep=False)]
    if not repeated.empty:
        pairs = sorted(set(zip(repeated["method"], repeated["seed"], strict=True)))
        raise ValueError(f"runs listed more than once (method, seed): {pairs}; keep one row per run")


def seed_table(per_run: pd.DataFrame, figures: Sequence[str], reference: str = REFERENCE_METHOD) -> pd.DataFrame:
    """One row per method (paper order): its seeds, each figure's mean ± std and Welch's t against ``reference``
    ("–" on the reference's own row, n/a where a side has fewer than two seeds)."""
    check_per_run(per_run, figures)
    values = {
        method: {figure: of_method[figure].dropna().tolist() for figure in figures}
        for method, of_method in per_run.groupby("method")
    }
    records = []
    for method in method_order(list(values)):
        record: dict[str, object] = {"method": method_label(method), "seeds": int((per_run["method"] == method).sum())}
        for figure in figures:
            record[figure] = mean_std(values[method][figure], 3)
        for figure in figures:
            if method == reference or reference not in values:
                cell = "–"
            else:
                cell = welch_text(*welch(values[method][figure], values[reference][figure]))
            record[f"welch_{figure}_vs_{reference}"] = cell
        records.append(record)
    return pd.DataFrame.from_records(records)
