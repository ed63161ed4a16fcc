"""Quickstart summary: reward windows and curves come from verl's file-logger JSONL, and a run with no training
step is reported as an error rather than as a zero reward.
"""

import json

import pytest

from deltal.quickstart import plot_curves, training_curves, window_means


def _write_log(path, records):
    path.write_text("".join(json.dumps({"step": step, "data": data}) + "\n" for step, data in records))


def test_curves_and_windows_are_read_from_the_file_logger_format(tmp_path):
    log = tmp_path / "run.jsonl"
    records = [(0, {"val-core/countdown_easy/acc/mean@1": 0.25})]
    records += [(s, {"critic/score/mean": s / 10, "response_length/mean": 11.0 + s}) for s in range(1, 11)]
    records += [(10, {"val-core/countdown_easy/acc/mean@1": 0.5})]
    _write_log(log, records)
    curves = training_curves(log)
    assert [v for _, v in curves["val"]] == [0.25, 0.5]
    assert window_means(curves["reward"], 3) == pytest.approx((0.2, 0.9))
    png = plot_curves(curves, tmp_path / "curves.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_log_without_training_steps_is_an_error(tmp_path):
    log = tmp_path / "empty.jsonl"
    _write_log(log, [(0, {"val-core/countdown_easy/acc/mean@1": 0.1})])
    with pytest.raises(ValueError, match="did training run"):
        training_curves(log)
