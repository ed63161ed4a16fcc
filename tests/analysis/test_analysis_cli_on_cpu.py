"""`python -m deltal.analysis` end to end on hand-made verl logs: export, the three tables, and the curves.

Properties checked: export writes exactly the tidy columns with task/method/model parsed from run names; the CountDown
table holds each method's Avg@8/Pass@8 at its best checkpoint with the best value bold; the Math table holds the
per-dataset Avg@8, weighted and plain averages at the best weighted checkpoint; the monotonicity table holds the
Pearson correlations; curves writes PNGs; a missing input file exits with status 2 and a message.
"""

import math

import pandas as pd
import pytest

from deltal.analysis.__main__ import main


@pytest.fixture
def runs_csv(log_root, tmp_path):
    out = tmp_path / "runs.csv"
    assert main(["export", str(log_root), "--out", str(out)]) == 0
    return out


def _table(runs_csv, kind, capsys, *extra):
    assert main(["table", "--kind", kind, str(runs_csv), *extra]) == 0
    return capsys.readouterr().out


def _row(markdown, label):
    return next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))


def test_export_writes_the_tidy_columns(runs_csv):
    frame = pd.read_csv(runs_csv)
    assert list(frame.columns) == ["run", "task", "method", "model", "step", "metric", "value"]
    assert set(zip(frame["task"], frame["method"], frame["model"], strict=True)) == {
        ("countdown", "delta_l", "qwen2.5-3b"),
        ("countdown", "grpo_norm", "qwen2.5-3b"),
        ("math", "delta_l", "qwen2.5-7b"),
    }


def test_export_metric_filter_keeps_only_matching_metrics(log_root, tmp_path):
    out = tmp_path / "val.csv"
    assert main(["export", str(log_root), "--metrics", "^val-core/", "--out", str(out)]) == 0
    assert pd.read_csv(out)["metric"].str.startswith("val-core/").all()


def test_countdown_table_reports_the_best_checkpoint(runs_csv, capsys):
    markdown = _table(runs_csv, "countdown", capsys)
    assert "| Method | qwen2.5-3b Avg@8 | qwen2.5-3b Pass@8 |" in markdown
    assert _row(markdown, "ΔL Norm") == "| ΔL Norm | **1.000** | **1.000** |"
    assert _row(markdown, "GRPO Norm") == "| GRPO Norm | 0.600 | 0.800 |"
    assert markdown.index("GRPO Norm") < markdown.index("ΔL Norm")  # paper row order


def test_math_table_reports_datasets_and_averages(runs_csv, capsys):
    markdown = _table(runs_csv, "math", capsys)
    assert "| Method | Minerva | AIME2024 | MATH500 | AMC | W.Average | Average |" in markdown
    weighted = 440.6 / 885
    assert _row(markdown, "ΔL Norm") == f"| ΔL Norm | 0.200 | 0.100 | 0.700 | 0.400 | {weighted:.3f} | 0.350 |"


def test_math_table_follows_overridden_counts(runs_csv, capsys):
    markdown = _table(runs_csv, "math", capsys, "--counts", "aime2024=30")
    assert _row(markdown, "ΔL Norm") == "| ΔL Norm | 0.900 | 0.900 | 0.900 |"


def test_monotonicity_table_holds_pearson_correlations(runs_csv, capsys, tmp_path):
    out = tmp_path / "mono.md"
    assert main(["table", "--kind", "monotonicity", str(runs_csv), "--out", str(out)]) == 0
    markdown = out.read_text()
    assert "| Method | CD; qwen2.5-3b | Math; qwen2.5-7b |" in markdown
    delta_l = _row(markdown, "ΔL Norm")
    assert f"{1 / math.sqrt(5):.3f}" in delta_l
    assert f"**{0.5 / math.sqrt(0.7):.3f}**" in _row(markdown, "GRPO Norm")


def test_curves_writes_score_length_and_entropy_pngs(runs_csv, tmp_path, capsys):
    out = tmp_path / "curves"
    assert main(["curves", str(runs_csv), "--task", "countdown", "--out", str(out), "--smooth", "2"]) == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == [f"countdown__qwen2.5-3b__{kind}.png" for kind in ("entropy", "response_length", "score")]
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in out.iterdir())


def test_missing_input_exits_with_a_message(tmp_path, capsys):
    assert main(["export", str(tmp_path / "absent"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_variance_lab_help_comes_from_the_field_docstrings():
    """Every flag of the variance lab documents itself from its dataclass field (--help is the documentation)."""
    from dataclasses import fields

    from deltal.analysis.variance import field_docs
    from deltal.analysis.variance_model import ModelLabConfig
    from deltal.analysis.variance_synthetic import SyntheticConfig

    for config_type in (SyntheticConfig, ModelLabConfig):
        docs = field_docs(config_type)
        assert {field.name for field in fields(config_type)} == set(docs), config_type.__name__
        assert all(docs.values())
