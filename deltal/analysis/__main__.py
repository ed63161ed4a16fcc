"""Analysis command line: export logs to a tidy CSV, then build the paper's tables and curves from it.

    python -m deltal.analysis export RUN_DIR_OR_JSONL... --out runs.csv      # or --wandb entity/project
        [--generations RUN=DIR ...]       # exact Avg@k/Pass@k from trainer.validation_data_dir dumps
    python -m deltal.analysis table --kind countdown|math|monotonicity runs.csv [--out table.md]
    python -m deltal.analysis curves runs.csv --task countdown|math --out DIR

See deltal/analysis/README.md for what each command reads and writes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from deltal.analysis.generations import load_generations, parse_generation_source
from deltal.analysis.logs import load_file_logs, load_wandb_runs, read_tidy_csv
from deltal.analysis.metrics import MATH_QUESTION_COUNTS, TASKS, parse_counts
from deltal.analysis.plots import plot_curves
from deltal.analysis.tables import TABLE_KINDS, build_table


def _add_score_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=8, help="samples per prompt at validation: Avg@k / Pass@k (8)")
    parser.add_argument(
        "--var", default=None, help="reward variable to read (default: verl's val-core one, acc if logged else reward)"
    )
    parser.add_argument(
        "--counts",
        type=parse_counts,
        default=dict(MATH_QUESTION_COUNTS),
        help="Math questions per dataset for the weighted average (default minerva=272,aime2024=30,math500=500,amc=83)",
    )


def _generation_source(text: str) -> tuple[str, Path]:
    try:
        return parse_generation_source(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deltal.analysis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="verl file-logger JSONL (or W&B) -> tidy CSV")
    export.add_argument("paths", nargs="*", help="run directories or <experiment>.jsonl files")
    export.add_argument("--wandb", default=None, help="also export W&B runs: entity/project[/run_id] (needs network)")
    export.add_argument("--metrics", default=None, help="regex; keep only matching metric names")
    export.add_argument(
        "--generations",
        type=_generation_source,
        action="append",
        default=[],
        metavar="RUN=DIR",
        help="exact Avg@k/Pass@k of run RUN from its trainer.validation_data_dir dump (DIR/<step>.jsonl); repeatable",
    )
    export.add_argument("--out", type=Path, required=True, help="CSV to write")

    table = commands.add_parser("table", help="markdown table like paper Table 2, 4 or 5")
    table.add_argument("csv", type=Path, help="tidy CSV from `export`")
    table.add_argument("--kind", choices=TABLE_KINDS, required=True)
    table.add_argument("--every", type=int, default=50, help="evaluation spacing for the monotonicity score (50)")
    table.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print)")
    _add_score_options(table)

    curves = commands.add_parser("curves", help="PNGs of score, response length and entropy vs step")
    curves.add_argument("csv", type=Path, help="tidy CSV from `export`")
    curves.add_argument("--task", choices=TASKS, required=True)
    curves.add_argument("--out", type=Path, required=True, help="directory for the PNGs")
    curves.add_argument("--smooth", type=int, default=1, help="rolling-mean window for training curves (1 = raw)")
    _add_score_options(curves)
    return parser


def run_export(args: argparse.Namespace) -> None:
    if not args.paths and args.wandb is None and not args.generations:
        raise SystemExit("export needs run directories / JSONL files, --wandb entity/project, or --generations")
    frames = []
    if args.paths:
        frames.append(load_file_logs(args.paths, metric_filter=args.metrics))
    if args.wandb is not None:
        frames.append(load_wandb_runs(args.wandb, metric_filter=args.metrics))
    if args.generations:
        logged = set(pd.concat(frames)["run"]) if frames else set()
        exact = load_generations(args.generations, metric_filter=args.metrics)
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows for {frame['run'].nunique()} runs to {args.out}")


def run_table(args: argparse.Namespace) -> None:
    markdown = build_table(
        args.kind, read_tidy_csv(args.csv), k=args.k, counts=args.counts, every=args.every, var=args.var
    )
    if args.out is None:
        print(markdown, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown)
        print(f"wrote {args.out}")


def run_curves(args: argparse.Namespace) -> None:
    paths = plot_curves(
        read_tidy_csv(args.csv), args.task, args.out, k=args.k, counts=args.counts, var=args.var, smooth=args.smooth
    )
    for path in paths:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        {"export": run_export, "table": run_table, "curves": run_curves}[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
