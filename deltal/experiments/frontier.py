"""Stability frontier: methods × learning rates (and a second batch size) on a CountDown trace task, then one table
and one figure of final held-out accuracy against the learning rate.

    python -m deltal.experiments.frontier --task countdown_trace_full --methods delta_l,dr_grpo_norm,dapo_norm \\
        --seeds 0,1 --lrs 1e-4,4e-4,1.6e-3 --alt-prompts 8 --alt-lr 4e-4 --out .deltal/frontier
    python -m deltal.experiments.frontier --out .deltal/frontier --plots-only       # table and figure again

The variance argument behind ΔL predicts that a lower-variance gradient tolerates larger steps and smaller batches.
Each cell of the grid (prompts per step, learning rate) is one ``deltal.experiments.compare`` experiment in
``<out>/prompts<P>-lr<lr>/`` with every other setting shared, so ``compare --plots-only --out <cell>`` draws any cell's
curves. A run that crashes (a learning rate large enough to produce non-finite logits stops sampling) is recorded
as diverged (``failed.json`` beside its log) and the grid goes on; resuming skips finished and diverged runs alike.

Per cell and method the table gives the plateau held-out accuracy (mean of each run's last ``plateau_evals``
evaluations, mean ± std over seeds) and how many runs broke: diverged (crashed, or logged a non-finite loss or
gradient norm) or collapsed (plateau below the accuracy the run started from). ``<out>/frontier.md`` and
``<out>/frontier.csv`` hold the table, ``<out>/frontier.png`` the figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from tqdm import tqdm

from deltal.cli import add_options, settings_from
from deltal.experiments import compare

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

FAILED_NAME = "failed.json"
GRID_NAME = "grid.json"
# Logged figures whose non-finite value marks a diverged run.
DIVERGENCE_METRICS = ("actor/pg_loss", "actor/grad_norm")


@dataclass(frozen=True, kw_only=True)
class FrontierGrid:
    """The grid: learning rates at the base batch size, and optionally one more batch size at one learning rate."""

    lrs: tuple[float, ...] = (1e-4, 4e-4, 1.6e-3)
    """Actor learning rates swept at --prompts prompts per step."""
    alt_prompts: int | None = None
    """A second prompts-per-step value, run at --alt-lr only."""
    alt_lr: float | None = None
    """The learning rate of the --alt-prompts cell."""


@dataclass(frozen=True, kw_only=True)
class FrontierCommand:
    """Where the grid is written and how it is reported."""

    out: Path
    """Grid folder: one compare experiment per cell, frontier.md, frontier.csv, frontier.png."""
    cache: Path = Path(".deltal")
    """Where shared data and models are cached."""
    plateau_evals: int = 3
    """Evaluations averaged at the end of each run for its plateau accuracy."""
    plots_only: bool = False
    """Only report the runs already finished."""


@dataclass(frozen=True)
class Cell:
    """One grid point."""

    prompts: int
    lr: float

    @property
    def name(self) -> str:
        return f"prompts{self.prompts}-lr{self.lr:g}"


def cells(grid: FrontierGrid, prompts: int) -> list[Cell]:
    """The grid's cells, base batch size first."""
    chosen = [Cell(prompts, lr) for lr in grid.lrs]
    if grid.alt_prompts is not None:
        chosen.append(Cell(grid.alt_prompts, grid.alt_lr))
    return chosen


def check_grid(grid: FrontierGrid, settings: compare.CompareSettings) -> None:
    """Raise ValueError naming the fix for a grid no run can use."""
    compare.check_settings(settings)
    if not grid.lrs or any(lr <= 0 for lr in grid.lrs) or len(set(grid.lrs)) != len(grid.lrs):
        raise ValueError(f"--lrs must be distinct positive learning rates, got {list(grid.lrs)}")
    if (grid.alt_prompts is None) != (grid.alt_lr is None):
        raise ValueError("--alt-prompts and --alt-lr go together: give both or neither")
    if grid.alt_prompts is not None and (grid.alt_prompts < 1 or grid.alt_lr <= 0):
        raise ValueError("--alt-prompts must be >= 1 and --alt-lr positive")


def run_grid(grid: FrontierGrid, settings: compare.CompareSettings, out: Path, cache: Path) -> None:
    """Train every run of every cell not finished or diverged yet; a crash is recorded and the grid goes on."""
    assets = compare.prepare(settings, cache)
    runs = [
        (cell, method, seed)
        for cell in cells(grid, settings.prompts)
        for seed in settings.seeds
        for method in settings.methods
    ]
    with tqdm(runs, desc="frontier runs", unit="run") as progress:
        for cell, method, seed in progress:
            cell_settings = dataclasses.replace(settings, prompts=cell.prompts, lr=cell.lr)
            runs_dir = out / cell.name / "runs"
            run_dir = runs_dir / compare.run_name(settings.task, method, seed)
            progress.set_postfix_str(f"{cell.name} {run_dir.name}")
            if (run_dir / FAILED_NAME).exists():
                continue
            try:
                compare.run_one(cell_settings, assets, method, seed, runs_dir)
            except compare.RunFailed as failure:
                logger.warning("%s: %s; recorded as diverged", cell.name, failure)
                tail = (run_dir / "train.log").read_text(errors="replace").splitlines()[-40:]
                record = {"method": method, "seed": seed, "error": str(failure), "log_tail": tail}
                (run_dir / FAILED_NAME).write_text(json.dumps(record, indent=2) + "\n")


def run_logs(cell_dir: Path) -> tuple[list[Path], set[str]]:
    """Metric logs of a cell's finished and diverged runs, and the names of the runs that diverged.

    A run diverged when it crashed (``failed.json``) or logged a non-finite loss or gradient norm (read from the raw
    log: the tidy table leaves NaN values out).
    """
    from deltal.analysis.logs import iter_jsonl_records

    runs_dir = cell_dir / "runs"
    logs, diverged = [], set()
    for run in sorted(runs_dir.iterdir()) if runs_dir.is_dir() else []:
        log = run / f"{run.name}.jsonl"
        failed = (run / FAILED_NAME).exists()
        if not (failed or (run / compare.DONE_NAME).exists()) or not log.exists() or log.stat().st_size == 0:
            continue
        logs.append(log)
        logged = (
            value
            for _, metrics in iter_jsonl_records(log)
            for key, value in metrics.items()
            if key in DIVERGENCE_METRICS
        )
        if failed or not all(isinstance(value, int | float) and math.isfinite(value) for value in logged):
            diverged.add(run.name)
    return logs, diverged


def run_outcomes(frame: pd.DataFrame, diverged: set[str], plateau_evals: int) -> pd.DataFrame:
    """One row per run: method, start and plateau held-out accuracy, and whether it diverged or collapsed."""
    from deltal.analysis.comparison import accuracy_curves

    accuracy = accuracy_curves(frame)
    rows = []
    for run, curve in accuracy.groupby("run"):
        curve = curve.sort_values("step")
        start, plateau = float(curve["value"].iloc[0]), float(curve["value"].tail(plateau_evals).mean())
        rows.append(
            {
                "run": run,
                "method": curve["method"].iloc[0],
                "start_accuracy": start,
                "plateau_accuracy": plateau,
                "diverged": run in diverged,
                "collapsed": run not in diverged and plateau < start,
            }
        )
    return pd.DataFrame(rows)


def frontier_table(out: Path, grid_cells: Sequence[Cell], plateau_evals: int, runs: set[str]) -> pd.DataFrame:
    """Per cell and method: plateau accuracy over seeds and how many runs broke, over the named ``runs`` only
    (cells without any are skipped)."""
    from deltal.analysis.logs import load_file_logs

    rows = []
    for cell in grid_cells:
        logs, diverged = run_logs(out / cell.name)
        logs = [log for log in logs if log.parent.name in runs]
        if not logs:
            logger.warning("no finished runs in %s; skipping it", out / cell.name)
            continue
        outcomes = run_outcomes(load_file_logs(logs), diverged, plateau_evals)
        for method, of_method in outcomes.groupby("method"):
            plateau = of_method["plateau_accuracy"]
            rows.append(
                {
                    "prompts": cell.prompts,
                    "lr": cell.lr,
                    "method": method,
                    "runs": len(of_method),
                    "plateau_mean": float(plateau.mean()),
                    "plateau_std": float(plateau.std(ddof=0)),
                    "diverged": int(of_method["diverged"].sum()),
                    "collapsed": int(of_method["collapsed"].sum()),
                }
            )
    if not rows:
        raise FileNotFoundError(f"no finished runs under {out}; train first (drop --plots-only)")
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame) -> str:
    """Methods as rows, cells as columns: ``plateau ± std`` and the broken runs when there are any."""
    from deltal.analysis.comparison import to_markdown as markdown_of
    from deltal.analysis.tables import method_label, method_order

    columns = [
        f"P={prompts}, lr={lr:g}" for prompts, lr in table[["prompts", "lr"]].drop_duplicates().itertuples(index=False)
    ]
    records = []
    for method in method_order(list(table["method"].unique())):
        record = {"method": method_label(method)}
        for row in table[table["method"] == method].itertuples(index=False):
            broken = [
                f"{count} {kind}" for kind, count in (("diverged", row.diverged), ("collapsed", row.collapsed)) if count
            ]
            cell = f"{row.plateau_mean:.3f} ± {row.plateau_std:.3f}"
            record[f"P={row.prompts}, lr={row.lr:g}"] = cell + (
                f" ({', '.join(broken)} of {row.runs})" if broken else ""
            )
        records.append(record)
    return markdown_of(pd.DataFrame.from_records(records, columns=["method", *columns]).fillna("–"))


def frontier_figure(table: pd.DataFrame, base_prompts: int) -> Figure:
    """Plateau accuracy against the learning rate, one line per method; other batch sizes as open markers."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    from deltal.analysis.tables import method_label, method_order

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axes = figure.add_subplot()
    for index, method in enumerate(method_order(list(table["method"].unique()))):
        of_method = table[table["method"] == method].sort_values("lr")
        base = of_method[of_method["prompts"] == base_prompts]
        axes.errorbar(
            base["lr"],
            base["plateau_mean"],
            yerr=base["plateau_std"],
            color=f"C{index}",
            marker="o",
            capsize=3,
            label=f"{method_label(method)} (P={base_prompts})",
        )
        for row in of_method[of_method["prompts"] != base_prompts].itertuples(index=False):
            axes.errorbar(
                [row.lr],
                [row.plateau_mean],
                yerr=[row.plateau_std],
                color=f"C{index}",
                marker="s",
                mfc="none",
                capsize=3,
                linestyle="none",
                label=f"{method_label(method)} (P={row.prompts})",
            )
    axes.set_xscale("log")
    # A tick at each learning rate of the grid and no minor ticks: the log axis's default minor labels (2e-4, 3e-4,
    # 4e-4, ...) overlap on a grid that spans one decade or so.
    lrs = sorted(table["lr"].unique())
    axes.xaxis.set_major_locator(FixedLocator(lrs))
    axes.set_xticklabels([f"{lr:g}" for lr in lrs])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("actor learning rate")
    axes.set_ylabel("plateau held-out accuracy")
    axes.set_title("stability frontier")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def plot_frontier(table: pd.DataFrame, base_prompts: int, path: Path) -> Path:
    """Save frontier_figure as a PNG at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frontier_figure(table, base_prompts).savefig(path, dpi=120)
    return path


def _base(settings: dict) -> dict:
    # The settings every cell shares: all of compare's but the method and seed lists and the learning rate (each
    # cell sets its own).
    return {key: value for key, value in compare.shared_settings(settings).items() if key != "lr"}


def _union(first: list, second: list) -> list:
    return first + [value for value in second if value not in first]


def save_grid(out: Path, grid: FrontierGrid, settings: compare.CompareSettings) -> dict:
    """Record the grid and its base settings in ``out/grid.json`` and return the record.

    A later call may add learning rates, methods and seeds (the record keeps the union); any other setting but
    --lr, or another second batch size, must stay what it was (a ValueError names the file).
    """
    record = json.loads(json.dumps({"grid": dataclasses.asdict(grid), "settings": dataclasses.asdict(settings)}))
    path = out / GRID_NAME
    if path.exists():
        before = json.loads(path.read_text())
        alt = ("alt_prompts", "alt_lr")
        same_alt = all(before["grid"][key] in (None, record["grid"][key]) for key in alt) or all(
            record["grid"][key] is None for key in alt
        )
        if _base(before["settings"]) != _base(record["settings"]) or not same_alt:
            raise ValueError(f"{out} holds a grid with other settings ({path}); pass the same ones or a new --out")
        record["grid"]["lrs"] = sorted(_union(before["grid"]["lrs"], record["grid"]["lrs"]))
        for key in alt:
            record["grid"][key] = record["grid"][key] if record["grid"][key] is not None else before["grid"][key]
        for key in ("methods", "seeds"):
            record["settings"][key] = _union(before["settings"][key], record["settings"][key])
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def report(out: Path, plateau_evals: int) -> str:
    """Write frontier.csv, frontier.md and frontier.png from the runs under ``out``; return the markdown table.

    Only the grid's methods and seeds count: a cell shared with a larger comparison (more methods or seeds in the
    same folder) is reported on the grid's runs alone.
    """
    path = out / GRID_NAME
    if not path.exists():
        raise FileNotFoundError(f"{out} has no {GRID_NAME}; run the grid first (drop --plots-only)")
    record = json.loads(path.read_text())
    grid = FrontierGrid(**{key: tuple(v) if isinstance(v, list) else v for key, v in record["grid"].items()})
    base = record["settings"]
    wanted = {compare.run_name(base["task"], method, seed) for method in base["methods"] for seed in base["seeds"]}
    table = frontier_table(out, cells(grid, base["prompts"]), plateau_evals, wanted)
    table.to_csv(out / "frontier.csv", index=False)
    text = to_markdown(table)
    (out / "frontier.md").write_text(text)
    plot_frontier(table, base["prompts"], out / "frontier.png")
    return text


def build_parser() -> argparse.ArgumentParser:
    """One flag per field of FrontierCommand, FrontierGrid and CompareSettings, helped by its docstring."""
    parser = argparse.ArgumentParser(prog="python -m deltal.experiments.frontier", description=__doc__.splitlines()[0])
    for settings_type in (FrontierCommand, FrontierGrid, compare.CompareSettings):
        add_options(parser, settings_type)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = settings_from(args, FrontierCommand)
    grid = settings_from(args, FrontierGrid)
    settings = settings_from(args, compare.CompareSettings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = command.out.resolve()
    try:
        if not command.plots_only:
            check_grid(grid, settings)
            save_grid(out, grid, settings)
            run_grid(grid, settings, out, command.cache.resolve())
        table = report(out, command.plateau_evals)
    except (ValueError, FileNotFoundError) as err:
        print(f"frontier: {err}", file=sys.stderr)
        return compare.EXIT_USAGE
    print(table, end="")
    print(f"frontier: wrote {out / 'frontier.md'}, {out / 'frontier.csv'} and {out / 'frontier.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
