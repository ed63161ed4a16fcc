"""The method comparison's figures from a hand-made tidy table: best and plateau held-out accuracy, steps to a
target, the monotonicity score, the final length and length quantiles, the predicted CV ratio early and late and the
gradient norm per method, mean ± std over seeds, Welch's t against ΔL, and one PNG per curve."""

import math

import pandas as pd
import pytest

from deltal.analysis.comparison import plot_comparison, summarise, summary_frame, to_markdown, welch_tests

VAL = "val-core/countdown_trace/acc/mean@1"
CV_RATIO = "deltal/variance/cv_ratio/dr_grpo_norm"


def _frame() -> pd.DataFrame:
    rows = []

    def run(method: str, seed: int, accuracy: list[float], lengths: list[float], cv_ratio: list[float]) -> None:
        name = f"countdown_trace__{method}__tiny-qwen2__seed{seed}"
        for step, value in zip((0, 10, 20), accuracy, strict=True):
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, VAL, value))
        for step, value in enumerate(lengths, start=1):
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "response_length/mean", value))
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "critic/score/mean", 0.1 * step))
            weight_std = 0.0 if method == "dapo_norm" else 0.5
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "deltal/adv_weight/std", weight_std))
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "actor/grad_norm", 0.01 * step + seed))
            for quantile, scale in (("p10", 0.25), ("p50", 1.0), ("p90", 2.0)):
                metric = f"deltal/response_length/{quantile}"
                rows.append((name, "countdown_trace", method, "tiny-qwen2", step, metric, scale * value))
        for step, value in enumerate(cv_ratio, start=1):
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, CV_RATIO, value))

    run("dapo_norm", 0, [0.1, 0.2, 0.3], [100, 90, 80], [1.4, 1.2, 1.0])
    run("dapo_norm", 1, [0.1, 0.3, 0.2], [100, 100, 100], [1.2, 1.2, 1.2])
    run("delta_l", 0, [0.1, 0.15, 0.2], [100, 120, 140], [])  # a run without telemetry
    return pd.DataFrame(rows, columns=["run", "task", "method", "model", "step", "metric", "value"])


def test_summary_per_method_over_seeds():
    rows = {row.method: row for row in summarise(_frame(), target=0.3, final_window=2, cv_window=2, plateau_evals=2)}
    dapo, delta = rows["dapo_norm"], rows["delta_l"]
    assert dapo.seeds == 2 and delta.seeds == 1
    assert dapo.best_accuracy == [0.3, 0.3]
    assert dapo.plateau_accuracy == pytest.approx([0.25, 0.25]) and delta.plateau_accuracy == pytest.approx([0.175])
    assert dapo.length_first[0] == pytest.approx((23.75, 95.0, 190.0))
    assert dapo.length_last[0] == pytest.approx((21.25, 85.0, 170.0))
    assert dapo.steps_to_target == [20.0, 10.0]
    assert math.isnan(delta.steps_to_target[0])
    assert dapo.monotonicity[0] == pytest.approx(1.0) and dapo.monotonicity[1] == pytest.approx(0.5)
    assert dapo.final_length == [85.0, 100.0] and delta.final_length == [130.0]
    assert dapo.cv_ratio_first == pytest.approx([1.3, 1.2]) and dapo.cv_ratio_last == pytest.approx([1.1, 1.2])
    assert math.isnan(delta.cv_ratio_first[0]) and math.isnan(delta.cv_ratio_last[0])
    assert dapo.grad_norm == pytest.approx([0.02, 1.02]) and delta.grad_norm == pytest.approx([0.02])

    table = summary_frame(list(rows.values()), target=0.3)
    assert list(table["method"]) == ["DAPO Norm", "ΔL Norm"]
    assert table.iloc[0]["best_accuracy"] == "0.300 ± 0.000"
    assert table.iloc[0]["plateau_accuracy"] == "0.250 ± 0.000"
    assert table.iloc[0]["length_p10/p50/p90_first_to_last"] == "24/98/195 → 23/92/185"
    # ΔL has one seed here: the t test needs two on each side.
    assert table.iloc[0]["welch_best_vs_delta_l"] == "n/a" and table.iloc[1]["welch_best_vs_delta_l"] == "–"
    assert table.iloc[0]["steps_to_0.3"] == "15 (2/2)" and table.iloc[1]["steps_to_0.3"] == "not reached (0/1)"
    assert table.iloc[0]["monotonicity"] == "0.75 ± 0.25"
    assert table.iloc[0]["cv_ratio_first_to_last"] == "1.25 ± 0.05 → 1.15 ± 0.05"
    assert table.iloc[1]["cv_ratio_first_to_last"] == "n/a → n/a"
    assert table.iloc[0]["grad_norm"] == "0.5200 ± 0.5000"
    markdown = to_markdown(table).splitlines()
    assert len(markdown) == 4 and markdown[0].startswith("| method |")


def test_every_curve_is_drawn(tmp_path):
    written = plot_comparison(_frame(), tmp_path, "trace")
    assert sorted(path.name for path in written) == [
        "adv_weight_spread.png",
        "batch_reward.png",
        "heldout_accuracy.png",
        "response_length.png",
        "variance_ratio.png",
    ]
    assert all(path.stat().st_size > 0 for path in written)


def test_a_frame_without_validation_is_refused():
    frame = _frame()
    with pytest.raises(ValueError, match="no validation metrics"):
        summarise(frame[frame["metric"] != VAL], target=0.3)


def test_welch_t_against_delta_l_uses_the_seeds_of_both_methods():
    frame = _frame()
    second_delta = frame[frame["run"].str.contains("delta_l")].assign(
        run=lambda rows: rows["run"].str.replace("seed0", "seed1")
    )
    second_delta.loc[second_delta["metric"] == VAL, "value"] += 0.05
    rows = summarise(pd.concat([frame, second_delta]), target=0.3)
    tests = {(test.method, test.figure): test for test in welch_tests(rows)}
    best = tests[("dapo_norm", "best_accuracy")]
    # DAPO best 0.3, 0.3 against ΔL 0.2, 0.25: Welch's t = (0.3 - 0.225) / sqrt(0 + 0.00125 / 2).
    assert best.t == pytest.approx(0.075 / math.sqrt(0.00125 / 2)) and 0 < best.p < 0.5
    assert {test.method for test in tests.values()} == {"dapo_norm"}
    assert welch_tests(rows, reference="grpo_norm") == []
