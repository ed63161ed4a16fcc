"""Analysis command line: export logs to a tidy CSV, then build the paper's tables and curves from it.

    python -m deltal.analysis export RUN_DIR_OR_JSONL... --out runs.csv      # or --wandb entity/project
        [--generations RUN=DIR ...]       # exact Avg@k/Pass@k from trainer.validation_data_dir dumps
    python -m deltal.analysis table --kind countdown|math|monotonicity runs.csv [--out table.md]
    python -m deltal.analysis curves runs.csv --task countdown|math --out DIR
    python -m deltal.analysis drift --base MODEL_DIR CHECKPOINT... [--out drift.csv]   # how far runs moved
    python -m deltal.analysis seeds PER_RUN.csv [--figures best,plateau] [--out table.md]  # mean ± std, Welch's t

See deltal/analysis/README.md for what each command reads and writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from deltal.analysis.comparison import to_markdown
from deltal.analysis.generations import load_generations, parse_generation_source
from deltal.analysis.logs import load_file_logs, load_wandb_runs, read_tidy_csv
from deltal.analysis.metrics import MATH_QUESTION_COUNTS, TASKS, parse_counts
from deltal.analysis.plots import plot_curves
from deltal.analysis.seed_table import seed_table
from deltal.analysis.tables import TABLE_KINDS, build_table
from deltal.analysis.weight_drift import weight_drift
from deltal.cli import add_options, option, settings_from


@dataclass(frozen=True, kw_only=True)
class ExportSettings:
    """verl file-logger JSONL (or W&B) -> tidy CSV."""

    paths: list[str] = field(default_factory=list, metadata=option(positional=True))
    """Run directories or <experiment>.jsonl files."""
    wandb: str | None = None
    """Also export W&B runs: entity/project[/run_id] (needs network)."""
    metrics: str | None = None
    """Regex; keep only matching metric names."""
    generations: list[tuple[str, Path]] = field(
        default_factory=list, metadata=option(parse=parse_generation_source, repeat=True, metavar="RUN=DIR")
    )
    """Exact Avg@k/Pass@k of run RUN from its trainer.validation_data_dir dump (DIR/<step>.jsonl); repeatable."""
    out: Path
    """CSV to write."""


@dataclass(frozen=True, kw_only=True)
class ScoreSettings:
    """How validation scores are read; shared by ``table`` and ``curves``."""

    k: int = 8
    """Samples per prompt at validation: Avg@k / Pass@k."""
    var: str | None = None
    """Reward variable to read (default: verl's val-core one, acc if logged else reward)."""
    counts: dict[str, int] = field(
        default_factory=lambda: dict(MATH_QUESTION_COUNTS), metadata=option(parse=parse_counts)
    )
    """Math questions per dataset for the weighted average, as dataset=questions pairs."""


@dataclass(frozen=True, kw_only=True)
class TableSettings(ScoreSettings):
    """Markdown table like paper Table 2, 4 or 5."""

    csv: Path = field(metadata=option(positional=True))
    """Tidy CSV from `export`."""
    kind: str = field(metadata=option(choices=TABLE_KINDS))
    """Which table: countdown (Table 2), math (Table 4) or monotonicity (Table 5)."""
    every: int = 50
    """Evaluation spacing for the monotonicity score."""
    out: Path | None = None
    """Markdown file to write (default: print)."""


@dataclass(frozen=True, kw_only=True)
class CurvesSettings(ScoreSettings):
    """PNGs of score, response length and entropy vs step."""

    csv: Path = field(metadata=option(positional=True))
    """Tidy CSV from `export`."""
    task: str = field(metadata=option(choices=TASKS))
    """Task whose runs are plotted."""
    out: Path
    """Directory for the PNGs."""
    smooth: int = 1
    """Rolling-mean window for training curves (1 = raw)."""


@dataclass(frozen=True, kw_only=True)
class DriftSettings:
    """How far each checkpoint's weights moved from a base model (L2 distance over all weights)."""

    checkpoints: list[Path] = field(default_factory=list, metadata=option(positional=True))
    """Hugging Face model folders, or verl checkpoints (global_step_<n>) saved with hf_model."""
    base: Path
    """The model the runs started from (for deltal compare: the warm-start folder under .deltal/assets)."""
    out: Path | None = None
    """CSV to write (default: print the table only)."""


@dataclass(frozen=True, kw_only=True)
class SeedsSettings:
    """Mean ± std over seeds and Welch's t against a reference method, from a CSV of one row per run."""

    csv: Path = field(metadata=option(positional=True))
    """CSV with columns method, seed and one numeric column per figure (other columns are ignored)."""
    figures: tuple[str, ...] = ("best_accuracy", "plateau_accuracy")
    """The figure columns to table (comma-separated)."""
    reference: str = "delta_l"
    """Method every other one is tested against."""
    out: Path | None = None
    """Markdown file to write (default: print)."""


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per settings dataclass; each flag's help is its field's docstring."""
    parser = argparse.ArgumentParser(prog="python -m deltal.analysis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, settings_type in SUBCOMMANDS.items():
        subparser = commands.add_parser(name, help=settings_type.__doc__)
        add_options(subparser, settings_type)
    return parser


def run_export(settings: ExportSettings) -> None:
    if not settings.paths and settings.wandb is None and not settings.generations:
        raise SystemExit("export needs run directories / JSONL files, --wandb entity/project, or --generations")
    frames = []
    if settings.paths:
        frames.append(load_file_logs(settings.paths, metric_filter=settings.metrics))
    if settings.wandb is not None:
        frames.append(load_wandb_runs(settings.wandb, metric_filter=settings.metrics))
    if settings.generations:
        logged = set(pd.concat(frames)["run"]) if frames else set()
        exact = load_generations(settings.generations, metric_filter=settings.metrics)
        unmatched = sorted(set(exact["run"]) - logged)
        if frames and unmatched:
            print(
                f"warning: --generations runs {unmatched} match no exported log; check RUN (the experiment name)",
                file=sys.stderr,
            )
        frames.append(exact)
    frame = pd.concat(frames, ignore_index=True)
    duplicated = frame.duplicated(subset=["run", "step", "metric"])
    if duplicated.any():
        runs = sorted(frame.loc[duplicated, "run"].unique())
        raise SystemExit(f"runs {runs} come from both the files and W&B; export them from one source")
    settings.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(settings.out, index=False)
    print(f"wrote {len(frame)} rows for {frame['run'].nunique()} runs to {settings.out}")


def run_table(settings: TableSettings) -> None:
    markdown = build_table(
        settings.kind,
        read_tidy_csv(settings.csv),
        k=settings.k,
        counts=settings.counts,
        every=settings.every,
        var=settings.var,
    )
    if settings.out is None:
        print(markdown, end="")
    else:
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(markdown)
        print(f"wrote {settings.out}")


def run_curves(settings: CurvesSettings) -> None:
    paths = plot_curves(
        read_tidy_csv(settings.csv),
        settings.task,
        settings.out,
        k=settings.k,
        counts=settings.counts,
        var=settings.var,
        smooth=settings.smooth,
    )
    for path in paths:
        print(f"wrote {path}")


def run_drift(settings: DriftSettings) -> None:
    if not settings.checkpoints:
        raise ValueError("drift needs at least one checkpoint folder after the options")
    table = weight_drift(settings.base, settings.checkpoints)
    print(to_markdown(table.map(lambda value: f"{value:.4g}" if isinstance(value, float) else value)), end="")
    if settings.out is not None:
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(settings.out, index=False)
        print(f"wrote {settings.out}")


def run_seeds(settings: SeedsSettings) -> None:
    if not settings.csv.is_file():
        raise FileNotFoundError(f"{settings.csv} does not exist; pass the per-run CSV (method, seed, figures)")
    markdown = to_markdown(seed_table(pd.read_csv(settings.csv), settings.figures, settings.reference))
    if settings.out is None:
        print(markdown, end="")
    else:
        settings.out.parent.mkdir(parents=True, exist_ok=True)
        settings.out.write_text(markdown)
        print(f"wrote {settings.out}")


SUBCOMMANDS: dict[str, type] = {
    "export": ExportSettings,
    "table": TableSettings,
    "curves": CurvesSettings,
    "drift": DriftSettings,
    "seeds": SeedsSettings,
}
RUNNERS = {"export": run_export, "table": run_table, "curves": run_curves, "drift": run_drift, "seeds": run_seeds}


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; 0 on success, 2 (with the message) for bad input."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        RUNNERS[args.command](settings_from(args, SUBCOMMANDS[args.command]))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
