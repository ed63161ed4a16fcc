"""The method comparison's figures from a hand-made tidy table: best held-out accuracy, steps to a target, the
monotonicity score and the final length per method, mean ± std over seeds, and one PNG per curve."""

import math

import pandas as pd
import pytest

from deltal.analysis.comparison import plot_comparison, summarise, summary_frame, to_markdown

VAL = "val-core/countdown_trace/acc/mean@1"


def _frame() -> pd.DataFrame:
    rows = []

    def run(method: str, seed: int, accuracy: list[float], lengths: list[float]) -> None:
        name = f"countdown_trace__{method}__tiny-qwen2__seed{seed}"
        for step, value in zip((0, 10, 20), accuracy, strict=True):
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, VAL, value))
        for step, value in enumerate(lengths, start=1):
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "response_length/mean", value))
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "critic/score/mean", 0.1 * step))
            weight_std = 0.0 if method == "dapo_norm" else 0.5
            rows.append((name, "countdown_trace", method, "tiny-qwen2", step, "deltal/adv_weight/std", weight_std))

    run("dapo_norm", 0, [0.1, 0.2, 0.3], [100, 90, 80])
    run("dapo_norm", 1, [0.1, 0.3, 0.2], [100, 100, 100])
    run("delta_l", 0, [0.1, 0.15, 0.2], [100, 120, 140])
    return pd.DataFrame(rows, columns=["run", "task", "method", "model", "step", "metric", "value"])


def test_summary_per_method_over_seeds():
    rows = {row.method: row for row in summarise(_frame(), target=0.3, final_window=2)}
    dapo, delta = rows["dapo_norm"], rows["delta_l"]
    assert dapo.seeds == 2 and delta.seeds == 1
    assert dapo.best_accuracy == [0.3, 0.3]
    assert dapo.steps_to_target == [20.0, 10.0]
    assert math.isnan(delta.steps_to_target[0])
    assert dapo.monotonicity[0] == pytest.approx(1.0) and dapo.monotonicity[1] == pytest.approx(0.5)
    assert dapo.final_length == [85.0, 100.0] and delta.final_length == [130.0]

    table = summary_frame(list(rows.values()), target=0.3)
    assert list(table["method"]) == ["DAPO Norm", "ΔL Norm"]
    assert table.iloc[0]["best_accuracy"] == "0.300 ± 0.000"
    assert table.iloc[0]["steps_to_0.3"] == "15 (2/2)" and table.iloc[1]["steps_to_0.3"] == "not reached (0/1)"
    assert table.iloc[0]["monotonicity"] == "0.75 ± 0.25"
    markdown = to_markdown(table).splitlines()
    assert len(markdown) == 4 and markdown[0].startswith("| method |")


def test_every_curve_is_drawn(tmp_path):
    written = plot_comparison(_frame(), tmp_path, "trace")
    assert sorted(path.name for path in written) == [
        "adv_weight_spread.png",
        "batch_reward.png",
        "heldout_accuracy.png",
        "response_length.png",
    ]
    assert all(path.stat().st_size > 0 for path in written)


def test_a_frame_without_validation_is_refused():
    frame = _frame()
    with pytest.raises(ValueError, match="no validation metrics"):
        summarise(frame[frame["metric"] != VAL], target=0.3)
