"""Gradient-variance lab command line: synthetic Monte Carlo of the aggregators, or real per-response gradients.

    python -m deltal.analysis.variance synthetic --lengths longtail --alphas 1,0.75,0.5 --out DIR
    python -m deltal.analysis.variance model --model PATH [--device cuda] --num-responses 128 --out DIR

``synthetic`` writes DIR/synthetic.csv (one row per aggregator: empirical vs closed-form expectation scale,
variance and CV) and DIR/synthetic.png (see `deltal.analysis.variance_synthetic` for the definitions).
``model`` writes DIR/responses.csv (length, ||g_i − ḡ||² and the variance estimate per response), DIR/aggregators.csv
(CV per aggregator), DIR/summary.json (linear fit, power-law fit Var ∝ L^β with its CI, CVs) and
DIR/variance_vs_length.png (paper Figure 2); see `deltal.analysis.variance_model`. It ends by printing the ΔL
exponent the power law suggests (α = β) as an override line. ``python -m deltal.cpu.assets`` builds the CPU
quickstart's tiny model offline and prints its directory, for --model.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import logging
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

from deltal.analysis.variance_fit import PowerLawFit, describe_fit
from deltal.analysis.variance_model import LinearFit, ModelLabConfig, plot_variance_vs_length, run_model_lab
from deltal.analysis.variance_synthetic import SyntheticConfig, plot_synthetic, run_synthetic


def parse_alphas(text: str) -> tuple[float, ...]:
    """``1,0.75,0.5`` -> (1.0, 0.75, 0.5)."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--alphas takes comma-separated numbers like 1,0.75,0.5, got {text!r}"
        ) from err
    if not values or any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"--alphas needs numbers >= 0, got {text!r}")
    return values


def field_docs(config_type: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass (Python keeps none of them at run time)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(config_type)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        is_doc = (
            isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)
        )
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _add_dataclass_flags(parser: argparse.ArgumentParser, config_type: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field, its help the field's docstring plus its default."""
    defaults = config_type()
    docs = field_docs(config_type)
    for field in fields(config_type):
        if field.name in skip:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        doc = docs.get(field.name, "")
        if field.name == "alphas":
            shown = ",".join(f"{alpha:g}" for alpha in default)
            parser.add_argument(flag, type=parse_alphas, default=default, help=f"{doc} (default {shown})")
        elif isinstance(default, bool):
            parser.add_argument(flag, action="store_true", help=doc)
        elif default is None:  # optional fields are annotated "int | None" or "str | None"
            kind = int if str(field.type).startswith("int") else str
            parser.add_argument(flag, type=kind, default=None, help=doc)
        elif isinstance(default, str):
            parser.add_argument(flag, default=default, help=f"{doc} (default {default})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{doc} (default {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deltal.analysis.variance", description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    synthetic = modes.add_parser("synthetic", help="Monte Carlo of the aggregators vs the closed forms")
    _add_dataclass_flags(synthetic, SyntheticConfig)
    synthetic.add_argument("--out", type=Path, required=True, help="directory for synthetic.csv and synthetic.png")
    model = modes.add_parser("model", help="per-response gradients of a real model vs length")
    _add_dataclass_flags(model, ModelLabConfig)
    model.add_argument("--out", type=Path, required=True, help="directory for the CSVs, JSON and PNG")
    return parser


def _config(config_type, args: argparse.Namespace):
    return config_type(**{field.name: getattr(args, field.name) for field in fields(config_type)})


def run_synthetic_mode(args: argparse.Namespace) -> None:
    config = _config(SyntheticConfig, args)
    results = run_synthetic(config)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "synthetic.csv", index=False)
    title = f"lengths={Path(config.lengths).name}, G={config.group_size}, M={config.max_response_length}"
    plot_synthetic(results, title, args.out / "synthetic.png")
    print(results.to_string(index=False, float_format=lambda value: f"{value:.4g}"))
    print(f"wrote {args.out / 'synthetic.csv'} and {args.out / 'synthetic.png'}")


def run_model_mode(args: argparse.Namespace) -> None:
    config = _config(ModelLabConfig, args)
    per_response, moments, summary = run_model_lab(config)
    args.out.mkdir(parents=True, exist_ok=True)
    per_response.to_csv(args.out / "responses.csv", index=False)
    moments.to_csv(args.out / "aggregators.csv", index=False)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    title = f"{Path(summary['model']).name}: N={summary['num_responses']}, {summary['num_params']} params"
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


def _fit_from(summary: dict) -> LinearFit:
    return LinearFit(slope=summary["slope"], intercept=summary["intercept"], r2=summary["r2"])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        {"synthetic": run_synthetic_mode, "model": run_model_mode}[args.mode](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
