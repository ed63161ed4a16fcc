"""Gradient-variance lab command line: synthetic Monte Carlo of the aggregators, or real per-response gradients.

    python -m deltal.analysis.variance synthetic --lengths longtail --alphas 1,0.75,0.5 --out DIR
    python -m deltal.analysis.variance model --model PATH [--device cuda] --num-responses 128 --out DIR
    python -m deltal.analysis.variance batch --model PATH --data test.parquet --out DIR

``synthetic`` writes DIR/synthetic.csv (one row per aggregator: empirical vs closed-form expectation scale,
variance and CV) and DIR/synthetic.png (see `deltal.analysis.variance_synthetic` for the definitions).
``model`` writes DIR/responses.csv (length, ||g_i − ḡ||² and the variance estimate per response), DIR/aggregators.csv
(CV per aggregator), DIR/summary.json (linear fit, power-law fit Var ∝ L^β with its CI, CVs) and
DIR/variance_vs_length.png (paper Figure 2); see `deltal.analysis.variance_model`. It ends by printing the ΔL
exponent the power law suggests (α = β) as an override line. ``python -m deltal.cpu.assets`` builds the CPU
quickstart's tiny model offline and prints its directory, for --model.
``batch`` measures the same on whole training batches drawn from many prompts whose responses are kept balanced
(as many correct as wrong), over the whole model by default, and writes the same four files
(`deltal.analysis.variance_batch`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from deltal.analysis.variance_batch import BatchLabConfig, run_batch_lab, write_outputs
from deltal.analysis.variance_fit import PowerLawFit, describe_fit
from deltal.analysis.variance_model import (
    LinearFit,
    ModelLabConfig,
    model_label,
    plot_variance_vs_length,
    run_model_lab,
)
from deltal.analysis.variance_synthetic import SyntheticConfig, plot_synthetic, run_synthetic
from deltal.cli import add_options, settings_from


@dataclass(frozen=True, kw_only=True)
class SyntheticOutput:
    """Where ``synthetic`` writes."""

    out: Path
    """Directory for synthetic.csv and synthetic.png."""


@dataclass(frozen=True, kw_only=True)
class ModelOutput:
    """Where ``model`` writes."""

    out: Path
    """Directory for responses.csv, aggregators.csv, summary.json and variance_vs_length.png."""


def build_parser() -> argparse.ArgumentParser:
    """The lab's parser: one flag per field of SyntheticConfig / ModelLabConfig, helped by its docstring."""
    parser = argparse.ArgumentParser(prog="python -m deltal.analysis.variance", description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    synthetic = modes.add_parser("synthetic", help="Monte Carlo of the aggregators vs the closed forms")
    add_options(add_options(synthetic, SyntheticConfig), SyntheticOutput)
    model = modes.add_parser("model", help="per-response gradients of a real model vs length")
    add_options(add_options(model, ModelLabConfig), ModelOutput)
    batch = modes.add_parser("batch", help="aggregator CVs over training batches of many balanced prompts")
    add_options(add_options(batch, BatchLabConfig), ModelOutput)
    return parser


def run_synthetic_mode(args: argparse.Namespace) -> None:
    config = settings_from(args, SyntheticConfig)
    results = run_synthetic(config)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "synthetic.csv", index=False)
    title = f"lengths={Path(config.lengths).name}, G={config.group_size}, M={config.max_response_length}"
    plot_synthetic(results, title, args.out / "synthetic.png")
    print(results.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    print(f"wrote {args.out / 'synthetic.csv'} and {args.out / 'synthetic.png'}")


def run_model_mode(args: argparse.Namespace) -> None:
    config = settings_from(args, ModelLabConfig)
    per_response, moments, summary = run_model_lab(config)
    args.out.mkdir(parents=True, exist_ok=True)
    per_response.to_csv(args.out / "responses.csv", index=False)
    moments.to_csv(args.out / "aggregators.csv", index=False)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"{model_label(summary['model'])}: N={summary['num_responses']}, {summary['num_params']} params"
    plot_variance_vs_length(per_response, _fit_from(summary), title, args.out / "variance_vs_length.png")
    print(
        f"slope {summary['slope']:.4g}, intercept {summary['intercept']:.4g}, R² {summary['r2']:.3f} over "
        f"{summary['num_responses']} responses (mean length {summary['mean_length']:.1f})"
    )
    print(moments.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    print(f"wrote responses.csv, aggregators.csv, summary.json, variance_vs_length.png to {args.out}")
    if summary["power_law"] is not None:
        print(describe_fit(PowerLawFit(**summary["power_law"])))
    print(f"suggested override: {summary['alpha_override']}")


def run_batch_mode(args: argparse.Namespace) -> None:
    per_response, moments, summary = run_batch_lab(settings_from(args, BatchLabConfig))
    write_outputs(per_response, moments, summary, args.out)
    print(
        f"{summary['prompts_kept']} prompts kept ({summary['prompts_skipped']} skipped), "
        f"{summary['num_responses']} responses, {summary['num_params']} parameters; ||g_i − ḡ_k||² against length: "
        f"slope {summary['slope']:.4g}, R² {summary['r2']:.3f}"
    )
    print(moments.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    if summary["power_law"] is not None:
        print(describe_fit(PowerLawFit(**summary["power_law"])))
    print(
        f"CV ratio Dr. GRPO Norm / ΔL (α = 1): {summary['cv_ratio_dr_grpo_norm_to_delta_l']:.3f} measured, "
        f"{summary['cv_ratio_closed_form']:.3f} closed form"
    )
    print(f"wrote responses.csv, aggregators.csv, summary.json, variance_vs_length.png to {args.out}")


def _fit_from(summary: dict) -> LinearFit:
    return LinearFit(slope=summary["slope"], intercept=summary["intercept"], r2=summary["r2"])


def main(argv: list[str] | None = None) -> int:
    """Run the lab; 0 on success, 2 (with the message) for bad settings or missing inputs."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        {"synthetic": run_synthetic_mode, "model": run_model_mode, "batch": run_batch_mode}[args.mode](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
