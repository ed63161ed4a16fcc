"""Evaluation metrics read verl's validation keys correctly and follow the paper's rules.

Properties checked on hand-made file-logger logs with answers computed by hand: Avg@8 is ``mean@8`` and Pass@8 is
``best@8/mean`` of verl's core variable (never the val-aux distractors); the Math score is the question-count-weighted
average (and honours overridden counts); the best checkpoint is the highest score, earliest on ties; the monotonicity
score is the Pearson correlation over evaluations on the 50-step grid; bad input raises errors that name the fix.
"""

import math

import pytest
from analysis_fixtures import MATH_RUN, write_log

from deltal.analysis.logs import TIDY_COLUMNS, load_file_logs, parse_run_name
from deltal.analysis.metrics import (
    best_checkpoint,
    monotonicity_score,
    parse_counts,
    task_scores,
    validation_scores,
    weighted_average,
)

DELTA_L = "countdown__delta_l__qwen2.5-3b__seed1"
GRPO = "countdown__grpo_norm__qwen2.5-3b__seed1"


@pytest.fixture
def frame(log_root):
    return load_file_logs([log_root])


def test_run_names_split_into_task_method_model_and_seed():
    name = parse_run_name("math__delta_l_alpha0.75__qwen2.5-3b__seed7")
    assert (name.task, name.method, name.model, name.seed) == ("math", "delta_l_alpha0.75", "qwen2.5-3b", 7)


def test_unconventional_run_names_are_tolerated():
    assert parse_run_name("my-experiment").method == "my-experiment"
    short = parse_run_name("countdown__dapo_norm")
    assert (short.task, short.method, short.model, short.seed) == ("countdown", "dapo_norm", "unknown", None)


def test_export_finds_every_run_and_skips_generation_dumps(frame):
    assert list(frame.columns) == list(TIDY_COLUMNS)
    assert set(frame["run"]) == {DELTA_L, GRPO, MATH_RUN}
    assert set(frame.loc[frame["run"] == MATH_RUN, "task"]) == {"math"}
    assert "note" not in set(frame["metric"])  # non-numeric entries are dropped


def test_task_is_inferred_from_data_sources_when_the_name_lacks_it(tmp_path):
    write_log(tmp_path / "p" / "baseline.jsonl", [(0, {"val-core/math500/acc/mean@8": 0.4})])
    frame = load_file_logs([tmp_path])
    assert set(frame["task"]) == {"math"} and set(frame["method"]) == {"baseline"}


def test_avg_at_8_reads_mean_at_8_of_the_core_variable(frame):
    avg = validation_scores(frame[frame["run"] == GRPO], "avg", k=8)
    assert list(avg["step"]) == [0, 50, 100, 150]
    assert list(avg["value"]) == [0.1, 0.6, 0.4, 0.5]


def test_pass_at_8_reads_best_at_8_mean_not_smaller_n(frame):
    passes = validation_scores(frame[frame["run"] == GRPO], "pass", k=8)
    assert list(passes["value"]) == [0.3, 0.8, 0.7, 0.95]


def test_another_variable_can_be_requested(frame):
    avg = validation_scores(frame[frame["run"] == GRPO], "avg", k=8, var="reward")
    assert list(avg["value"]) == pytest.approx([0.35, 0.6, 0.5, 0.55])


def test_missing_k_names_the_logged_sample_counts(frame):
    with pytest.raises(ValueError, match=r"logged n: \[4, 8\]"):
        validation_scores(frame[frame["run"] == GRPO], "pass", k=16)


def test_weighted_average_weights_datasets_by_question_count():
    scores = {"minerva": 0.2, "aime2024": 0.1, "math500": 0.7, "amc": 0.4}
    assert weighted_average(scores) == pytest.approx((272 * 0.2 + 30 * 0.1 + 500 * 0.7 + 83 * 0.4) / 885)
    assert weighted_average(scores, {"aime2024": 3, "amc": 1}) == pytest.approx((3 * 0.1 + 0.4) / 4)


def test_weighted_average_refuses_a_missing_dataset():
    with pytest.raises(ValueError, match="--counts"):
        weighted_average({"math500": 0.7})


def test_math_best_checkpoint_maximises_the_weighted_average(frame):
    scores = task_scores(frame, "math")
    assert list(scores["score"]) == pytest.approx([293.8 / 885, 406.3 / 885, 440.6 / 885])
    best = best_checkpoint(scores)
    assert best["step"].item() == 100


def test_overridden_counts_change_the_best_math_checkpoint(frame):
    best = best_checkpoint(task_scores(frame, "math", counts={"aime2024": 30}))
    assert best["step"].item() == 50


def test_countdown_best_checkpoint_takes_the_earliest_of_tied_scores(frame):
    best = best_checkpoint(task_scores(frame, "countdown")).set_index("run")
    assert best.loc[DELTA_L, "step"] == 50
    assert best.loc[GRPO, "step"] == 50 and best.loc[GRPO, "score"] == 0.6


def test_monotonicity_is_the_pearson_correlation_of_step_and_score():
    assert monotonicity_score([0, 50, 100, 150], [0.0, 1.0, 0.0, 1.0]) == pytest.approx(1 / math.sqrt(5))
    assert monotonicity_score([0, 50, 100, 150], [0.1, 0.6, 0.4, 0.5]) == pytest.approx(0.5 / math.sqrt(0.7))
    assert monotonicity_score([0, 50, 100], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)


def test_monotonicity_ignores_evaluations_off_the_50_step_grid():
    assert monotonicity_score([0, 50, 75, 100], [0.1, 0.2, 0.0, 0.3]) == pytest.approx(1.0)


def test_monotonicity_of_a_constant_score_is_nan_not_zero():
    assert math.isnan(monotonicity_score([0, 50, 100], [0.5, 0.5, 0.5]))


def test_counts_option_parses_and_rejects_bad_pairs():
    assert parse_counts("math500=500, amc=83") == {"math500": 500, "amc": 83}
    with pytest.raises(ValueError, match="dataset=questions"):
        parse_counts("math500:500")


def test_truncated_last_line_is_skipped_but_a_broken_middle_line_raises(tmp_path):
    path = write_log(tmp_path / "p" / "run.jsonl", [(0, {"val-core/countdown/acc/mean@8": 0.5})])
    with path.open("a") as handle:
        handle.write('{"step": 1, "data": {"actor/entr')
    assert len(load_file_logs([path])) == 1
    with path.open("a") as handle:
        handle.write("\n" + '{"step": 2, "data": {}}' + "\n")
    with pytest.raises(ValueError, match=r"run.jsonl:2"):
        load_file_logs([path])


def test_a_directory_without_logs_names_the_logger_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"trainer.logger=\[console,file\]"):
        load_file_logs([tmp_path])
