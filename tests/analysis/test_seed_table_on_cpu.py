"""`seeds` tables figures kept one row per run (mean ± std over seeds, Welch's t against ΔL) the way `deltal
compare` tables the runs it holds, and refuses a table it would misread."""

import pandas as pd
import pytest

from deltal.analysis.__main__ import main
from deltal.analysis.seed_table import seed_table

FIGURES = ("best_accuracy", "plateau_accuracy")


@pytest.fixture
def per_run():
    # The three-seed cell of docs/experiments.md (2026-12-03, night): accuracies on 128 problems (best) and the mean
    # of three evaluations (plateau), as counts of problems; its table read Welch t = 1.18 / 1.25 for Dr. GRPO Norm.
    rows = [
        ("delta_l", 0, 28, 81),
        ("delta_l", 1, 28, 83),
        ("delta_l", 2, 29, 77),
        ("dr_grpo_norm", 0, 27, 77),
        ("dr_grpo_norm", 1, 32, 91),
        ("dr_grpo_norm", 2, 32, 93),
        ("grpo_norm", 0, 26, 74),
    ]
    return pd.DataFrame(
        [(method, seed, best / 128, plateau / 384, "docs") for method, seed, best, plateau in rows],
        columns=["method", "seed", *FIGURES, "source"],
    )


def test_the_table_matches_what_compare_reported_for_the_same_runs(per_run):
    table = seed_table(per_run, FIGURES).set_index("method")
    assert list(table.index) == ["GRPO Norm", "Dr. GRPO Norm", "ΔL Norm"]  # the paper's order
    assert table.loc["ΔL Norm", "best_accuracy"] == "0.221 ± 0.004"
    assert table.loc["Dr. GRPO Norm", "plateau_accuracy"] == "0.227 ± 0.019"
    assert table.loc["Dr. GRPO Norm", "welch_best_accuracy_vs_delta_l"] == "t = 1.18, p = 0.35"
    assert table.loc["Dr. GRPO Norm", "welch_plateau_accuracy_vs_delta_l"] == "t = 1.25, p = 0.32"
    assert table.loc["ΔL Norm", "welch_plateau_accuracy_vs_delta_l"] == "–"
    # One seed: its value alone and no test.
    assert (table.loc["GRPO Norm", "seeds"], table.loc["GRPO Norm", "plateau_accuracy"]) == (1, "0.193")
    assert table.loc["GRPO Norm", "welch_best_accuracy_vs_delta_l"] == "n/a"


def test_another_reference_is_tested_against(per_run):
    table = seed_table(per_run, ("plateau_accuracy",), reference="dr_grpo_norm").set_index("method")
    assert table.loc["ΔL Norm", "welch_plateau_accuracy_vs_dr_grpo_norm"] == "t = -1.25, p = 0.32"
    assert table.loc["Dr. GRPO Norm", "welch_plateau_accuracy_vs_dr_grpo_norm"] == "–"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frame: frame.drop(columns="seed"), r"lacks the column\(s\) \['seed'\]"),
        (lambda frame: frame.assign(plateau_accuracy="high"), "'plateau_accuracy' is not numeric"),
        (lambda frame: pd.concat([frame, frame.head(1)]), r"more than once .*\('delta_l', 0\)"),
    ],
)
def test_a_table_it_would_misread_is_refused_with_the_fix(per_run, change, message):
    with pytest.raises(ValueError, match=message):
        seed_table(change(per_run), FIGURES)


def test_the_command_writes_the_table_and_names_a_missing_file(tmp_path, per_run, capsys):
    per_run.to_csv(tmp_path / "runs.csv", index=False)
    assert main(["seeds", str(tmp_path / "runs.csv"), "--out", str(tmp_path / "table.md")]) == 0
    assert "| Dr. GRPO Norm | 3 | 0.237 ± 0.018 | 0.227 ± 0.019 |" in (tmp_path / "table.md").read_text()
    assert main(["seeds", str(tmp_path / "absent.csv")]) == 2
    assert "absent.csv does not exist" in capsys.readouterr().err


def test_a_run_without_the_figure_counts_as_a_seed_but_gives_no_spread(per_run):
    # GRPO Norm's seed 0 kept no plateau: one value of two remains, shown alone rather than with a zero spread.
    per_run.loc[(per_run["method"] == "grpo_norm"), "plateau_accuracy"] = float("nan")
    per_run.loc[len(per_run)] = ("grpo_norm", 1, 27 / 128, 75 / 384, "docs")
    table = seed_table(per_run, FIGURES).set_index("method")
    assert table.loc["GRPO Norm", "seeds"] == 2
    assert table.loc["GRPO Norm", "plateau_accuracy"] == "0.195"
    assert table.loc["GRPO Norm", "best_accuracy"] == "0.207 ± 0.004"
