"""Load training runs into one tidy table: one row per (run, step, metric) with columns `TIDY_COLUMNS`.

Sources:

* verl's ``file`` logger (``trainer.logger=[console,file]``). verl 0.9.1's ``FileLogger`` writes
  ``$VERL_FILE_LOGGER_ROOT/<project_name>/<experiment_name>.jsonl`` (root defaults to the working directory, or
  exactly ``$VERL_FILE_LOGGER_PATH``), one JSON object per ``Tracking.log`` call: ``{"step": <int>, "data": {<flat
  metric name>: <number>}}``. The run name is the file's stem (the experiment name). Validation results arrive in the
  same stream (``val-core/...``, ``val-aux/...``) on evaluation steps; the initial validation is logged at step 0.
* W&B runs, when online (``load_wandb_runs``); never needed by the tests.

Run names follow ``{task}__{method}__{model}__seed{seed}`` (STYLE.md); other names are tolerated (see
`parse_run_name`). Command line: ``python -m deltal.analysis export RUN_DIR_OR_JSONL... --out runs.csv``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)

TIDY_COLUMNS: tuple[str, ...] = ("run", "task", "method", "model", "step", "metric", "value")
UNKNOWN = "unknown"
SEED_PATTERN = re.compile(r"^seed(\d+)$")
# Data sources that identify a task when the run name does not say it.
MATH_DATA_SOURCES = ("math500", "aime2024", "amc", "minerva")
COUNTDOWN_DATA_SOURCES = (
    "countdown",
    "countdown_easy",
    "countdown_trace",
    "countdown_trace_full",
    "countdown_trace_partial",
)


@dataclass(frozen=True)
class RunName:
    """The fields encoded in a run name; missing fields are `UNKNOWN` (seed: None)."""

    run: str
    task: str
    method: str
    model: str
    seed: int | None


def parse_run_name(run: str) -> RunName:
    """Split ``{task}__{method}__{model}__seed{seed}`` into its fields.

    Other names are tolerated: a ``seedN`` part anywhere gives the seed, the other ``__``-separated parts fill task,
    method and model in that order, and a name without ``__`` is taken as the method (task and model unknown), so
    every run still gets a row in tables.
    """
    parts = [part for part in run.split("__") if part]
    seed = None
    named = []
    for part in parts:
        match = SEED_PATTERN.match(part)
        if match and seed is None:
            seed = int(match.group(1))
        else:
            named.append(part)
    if len(named) == 1:
        return RunName(run=run, task=UNKNOWN, method=named[0], model=UNKNOWN, seed=seed)
    task, method, model = (named + [UNKNOWN] * 3)[:3]
    if len(named) > 3:  # extra parts belong to the model label (e.g. a length suffix)
        model = "__".join(named[2:])
    return RunName(run=run, task=task, method=method, model=model, seed=seed)


def is_file_logger_record(record: object) -> bool:
    """True for one line of verl's file logger: ``{"step": int, "data": dict}``."""
    return isinstance(record, dict) and isinstance(record.get("data"), dict) and isinstance(record.get("step"), int)


def _looks_like_metrics_log(path: Path) -> bool:
    """Check the first non-empty line, so generation dumps (``validation_data_dir``) are skipped."""
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                try:
                    return is_file_logger_record(json.loads(line))
                except json.JSONDecodeError:
                    return False
    return False


def find_log_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and directories into verl file-logger JSONL files (directories are searched recursively)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            if not _looks_like_metrics_log(path):
                raise ValueError(
                    f"{path} is not a verl file-logger log (each line must be {{'step': int, 'data': {{...}}}}); "
                    "pass the <project>/<experiment>.jsonl written with trainer.logger=[console,file]"
                )
            found.append(path)
        elif path.is_dir():
            candidates = sorted(path.rglob("*.jsonl"))
            logs = [candidate for candidate in candidates if _looks_like_metrics_log(candidate)]
            skipped = len(candidates) - len(logs)
            if skipped:
                logger.info("Skipped %d JSONL files under %s that are not metric logs", skipped, path)
            if not logs:
                raise FileNotFoundError(
                    f"no verl file-logger JSONL under {path}; run training with trainer.logger=[console,file] "
                    "(logs go to $VERL_FILE_LOGGER_ROOT/<project>/<experiment>.jsonl)"
                )
            found.extend(logs)
        else:
            raise FileNotFoundError(f"{path} does not exist; pass run directories or <experiment>.jsonl files")
    return found


def _numeric(value: object) -> float | None:
    """The metric value as a float, or None for non-numeric entries (strings, lists) that have no place in a table."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def iter_jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (step, metrics) per line. A truncated last line (run killed mid-write) is skipped with a warning."""
    lines = path.read_bytes().splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                logger.warning("%s: last line is truncated (run interrupted?); ignoring it", path)
                continue
            raise ValueError(f"{path}:{number} is not valid JSON ({err}); repair or remove that line") from err
        if not is_file_logger_record(record):
            raise ValueError(f"{path}:{number} is not a file-logger record {{'step': int, 'data': {{...}}}}")
        yield record["step"], record["data"]


def records_to_rows(run: str, records: Iterable[tuple[int, dict]]) -> list[tuple[str, int, str, float]]:
    """Flatten (step, metrics) records into (run, step, metric, value) rows, numeric metrics only."""
    rows = []
    for step, metrics in records:
        for metric, raw in metrics.items():
            value = _numeric(raw)
            if value is not None and not math.isnan(value):
                rows.append((run, step, metric, value))
    return rows


def infer_task(metrics: Iterable[str]) -> str:
    """Guess the task from validation metric names (``val-core/<data_source>/...``, ``exact/<data_source>/...``).

    `UNKNOWN` if none match.
    """
    sources = {
        name.split("/")[1]
        for name in metrics
        if (name.startswith("val-") or name.startswith("exact/")) and name.count("/") >= 2
    }
    if sources & set(MATH_DATA_SOURCES):
        return "math"
    if sources & set(COUNTDOWN_DATA_SOURCES):
        return "countdown"
    return UNKNOWN


def tidy_frame(rows: list[tuple[str, int, str, float]]) -> pd.DataFrame:
    """Build the tidy table from (run, step, metric, value) rows, adding task/method/model from the run name.

    A (run, step, metric) logged twice (a resumed run re-validating its checkpoint) keeps the last value.
    """
    frame = pd.DataFrame(rows, columns=["run", "step", "metric", "value"])
    frame = frame.drop_duplicates(subset=["run", "step", "metric"], keep="last")
    names = {run: parse_run_name(run) for run in frame["run"].unique()}
    tasks = {}
    for run, name in names.items():
        task = name.task
        if task == UNKNOWN:
            task = infer_task(frame.loc[frame["run"] == run, "metric"].unique())
        tasks[run] = task
    frame["task"] = frame["run"].map(tasks)
    frame["method"] = frame["run"].map({run: name.method for run, name in names.items()})
    frame["model"] = frame["run"].map({run: name.model for run, name in names.items()})
    frame["step"] = frame["step"].astype(int)
    return frame.loc[:, list(TIDY_COLUMNS)].sort_values(["run", "step", "metric"]).reset_index(drop=True)


def load_file_logs(paths: Iterable[str | Path], metric_filter: str | None = None) -> pd.DataFrame:
    """Load verl file-logger JSONL files (or directories holding them) into the tidy table.

    Args:
        paths: JSONL files or directories searched recursively.
        metric_filter: optional regex; only metrics it matches (``re.search``) are kept.
    """
    rows = []
    seen: dict[str, Path] = {}
    for path in find_log_files(paths):
        run = path.stem
        if run in seen:
            raise ValueError(
                f"two logs share the run name {run!r}: {seen[run]} and {path}; give each run a unique "
                "trainer.experiment_name or export them separately"
            )
        seen[run] = path
        rows.extend(records_to_rows(run, iter_jsonl_records(path)))
    if metric_filter is not None:
        pattern = re.compile(metric_filter)
        rows = [row for row in rows if pattern.search(row[2])]
    if not rows:
        raise ValueError("the logs hold no numeric metrics (or none match the metric filter)")
    return tidy_frame(rows)


def load_wandb_runs(project_path: str, metric_filter: str | None = None) -> pd.DataFrame:
    """Export W&B runs (``entity/project`` or ``entity/project/run_id``) into the tidy table; needs network + login.

    The run's display name plays the role of the experiment name; W&B's ``_step`` is the training step.
    """
    try:
        import wandb
    except ImportError as err:
        raise ImportError("W&B export needs the wandb package: pip install wandb") from err
    api = wandb.Api()
    parts = project_path.strip("/").split("/")
    if len(parts) == 3:
        runs = [api.run(project_path)]
    elif len(parts) == 2:
        runs = list(api.runs(project_path))
    else:
        raise ValueError(f"--wandb takes entity/project or entity/project/run_id, got {project_path!r}")
    rows = []
    for run in runs:
        records = (
            (int(entry["_step"]), {key: value for key, value in entry.items() if not key.startswith("_")})
            for entry in run.scan_history()
            if "_step" in entry
        )
        rows.extend(records_to_rows(run.name, records))
    if metric_filter is not None:
        pattern = re.compile(metric_filter)
        rows = [row for row in rows if pattern.search(row[2])]
    if not rows:
        raise ValueError(f"no numeric metrics found in W&B runs at {project_path}")
    return tidy_frame(rows)


def read_tidy_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by ``export`` and check its columns."""
    frame = pd.read_csv(path, dtype={"run": str, "task": str, "method": str, "model": str, "metric": str})
    missing = [column for column in TIDY_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path} lacks columns {missing}; expected {list(TIDY_COLUMNS)} as written by "
            "`python -m deltal.analysis export`"
        )
    return frame
