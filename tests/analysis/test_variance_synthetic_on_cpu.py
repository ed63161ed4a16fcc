"""The synthetic variance lab reproduces paper Table 1: Monte Carlo moments of every aggregator match the closed forms.

Properties checked (seeded, small, seconds): empirical expectation scale, variance and CV agree with the closed forms
within 5% for long-tailed and logged length distributions; the CSV has exactly the documented columns and one row per
aggregator; ΔL(α=1) has the lowest variance of the unbiased aggregators and GRPO's CV; logged lengths are read from
CSV and JSONL; lengths beyond the generation limit are refused with the flag to change.
"""

import json

import pandas as pd
import pytest

from deltal.analysis.variance import main
from deltal.analysis.variance_lengths import load_logged_lengths
from deltal.analysis.variance_synthetic import SYNTHETIC_COLUMNS, SyntheticConfig, run_synthetic

SMALL = {"group_size": 8, "batches": 30, "draws": 256, "dim": 32, "grad_norm": 4.0, "max_response_length": 1024}


@pytest.fixture(scope="module")
def longtail_results():
    return run_synthetic(SyntheticConfig(lengths="longtail", alphas=(1.0, 0.5), seed=3, **SMALL)).set_index(
        "aggregator"
    )


def test_monte_carlo_matches_the_closed_forms_within_five_percent(longtail_results):
    for quantity in ("expectation_scale", "variance", "cv"):
        empirical = longtail_results[quantity]
        closed = longtail_results[f"{quantity}_closed_form"]
        assert ((empirical - closed).abs() / closed).max() < 0.05, quantity


def test_delta_l_alpha_1_is_unbiased_with_minimum_variance_and_grpo_cv(longtail_results):
    closed_variance = longtail_results["variance_closed_form"]
    unbiased = ["dr_grpo_norm", "delta_l_alpha_1", "delta_l_alpha_0.5"]
    assert closed_variance[unbiased].idxmin() == "delta_l_alpha_1"
    assert longtail_results.loc[unbiased, "expectation_scale_closed_form"].tolist() == pytest.approx([1 / 1024] * 3)
    cv = longtail_results["cv_closed_form"]
    assert cv["delta_l_alpha_1"] == pytest.approx(cv["grpo_norm"])
    assert cv["delta_l_alpha_1"] < cv["delta_l_alpha_0.5"] < cv["dr_grpo_norm"]
    assert longtail_results["cv"]["delta_l_alpha_1"] < longtail_results["cv"]["dapo_norm"]


def test_logged_lengths_are_resampled_and_drive_the_closed_forms(tmp_path):
    lengths_file = tmp_path / "lengths.csv"
    pd.DataFrame({"response_length": [100] * 5}).to_csv(lengths_file, index=False)
    results = run_synthetic(SyntheticConfig(lengths=str(lengths_file), alphas=(1.0,), **SMALL)).set_index("aggregator")
    # With every L = 100 GRPO's scale is exactly 1/100 and DAPO's is G / (G·100).
    assert results.loc["grpo_norm", "expectation_scale_closed_form"] == pytest.approx(0.01)
    assert results.loc["dapo_norm", "expectation_scale"] == pytest.approx(0.01, rel=0.05)


def test_jsonl_lengths_accept_numbers_lists_and_objects(tmp_path):
    path = tmp_path / "lengths.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [7, [8, 9], {"response_length": [10]}, {"length": 11}]))
    assert load_logged_lengths(path).tolist() == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_lengths_beyond_the_limit_name_the_flag(tmp_path):
    path = tmp_path / "lengths.csv"
    path.write_text("length\n10\n5000\n")
    with pytest.raises(ValueError, match="--max-response-length"):
        run_synthetic(SyntheticConfig(lengths=str(path), **SMALL))


def test_cli_writes_the_documented_csv_and_a_png(tmp_path):
    out = tmp_path / "lab"
    flags = ["--group-size", "4", "--batches", "3", "--draws", "16", "--dim", "4", "--alphas", "1,0.75"]
    assert main(["synthetic", "--lengths", "uniform", *flags, "--out", str(out)]) == 0
    table = pd.read_csv(out / "synthetic.csv")
    assert list(table.columns) == list(SYNTHETIC_COLUMNS)
    expected = ["grpo_norm", "dapo_norm", "dr_grpo_norm", "delta_l_alpha_1", "delta_l_alpha_0.75"]
    assert table["aggregator"].tolist() == expected
    assert (out / "synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_a_missing_lengths_file(tmp_path, capsys):
    assert main(["synthetic", "--lengths", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]) == 2
    assert "uniform, longtail or a CSV/JSONL" in capsys.readouterr().err
