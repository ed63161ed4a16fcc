"""Exact Avg@k / Pass@k from verl validation dumps, and their precedence over verl's bootstrap best@k.

Properties checked on hand-made ``trainer.validation_data_dir`` dumps with answers computed by hand: the unbiased
estimator 1 - C(n-c, k)/C(n, k) (1 of 8 correct gives Pass@8 = 1 and Avg@8 = 0.125; 0 of 8 gives 0; n=4, c=2, k=2
gives 5/6); data sources are scored separately; samples are grouped by prompt uid (else prompt text) and a multi-turn
session counts once; ``acc`` is read before ``score``; the metric functions and tables prefer exact rows and fall back
to verl's keys with a warning about the bias; the Math weighted average uses the counted questions; bad input
(malformed lines, missing data_source, k above the sample count, a bad --generations value) raises errors naming
the fix.
"""

import json
import logging

import pandas as pd
import pytest
from analysis_fixtures import MATH_RUN, MATH_SCORES

from deltal.analysis.__main__ import main
from deltal.analysis.generations import exact_scores, load_generations, pass_at_k, tally_dump
from deltal.analysis.logs import load_file_logs
from deltal.analysis.metrics import task_scores, validation_scores

GRPO = "countdown__grpo_norm__qwen2.5-3b__seed1"


def dump_lines(step, questions, uid=True):
    """verl-style dump lines: ``questions`` is a list of (data_source, [acc per sample]); one line per sample."""
    lines = []
    for index, (source, accs) in enumerate(questions):
        for session, acc in enumerate(accs):
            line = {
                "input": f"{source} question {index}",
                "output": "<answer>1+2</answer>",
                "gts": "3",
                "score": float(acc),
                "step": step,
                "reward": float(acc),
                "acc": bool(acc),
                "data_source": source,
            }
            if uid:
                line["uid"] = f"prompt-{source}-{index}_{session}_0"
            lines.append(line)
    return lines


def write_dump(directory, step, questions, uid=True):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{step}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in dump_lines(step, questions, uid)))
    return path


def one_score(path, k, source="countdown"):
    of_source = {key: tally for key, tally in tally_dump(path).items() if key[1] == source}
    (score,) = exact_scores(of_source, k)
    return score


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(8, 1, 8) == 1.0
    assert pass_at_k(8, 0, 8) == 0.0
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)
    assert pass_at_k(8, 1, 1) == pytest.approx(1 / 8)
    assert pass_at_k(10, 3, 4) == pytest.approx(1 - 35 / 210)


def test_pass_at_k_refuses_k_above_the_sample_count():
    with pytest.raises(ValueError, match=r"n=4.*val_kwargs.n=8"):
        pass_at_k(4, 1, 8)


def test_one_correct_of_eight_counts_as_passed_not_as_the_bootstrap_two_thirds(tmp_path):
    path = write_dump(tmp_path / "dump", 50, [("countdown", [1, 0, 0, 0, 0, 0, 0, 0])])
    score = one_score(path, 8)
    assert (score.pass_at_k, score.avg, score.questions, score.variable) == (1.0, 0.125, 1, "acc")


def test_questions_are_averaged_and_data_sources_scored_separately(tmp_path):
    questions = [
        ("countdown", [1, 0, 0, 0, 0, 0, 0, 0]),
        ("countdown", [0] * 8),
        ("math500", [1, 1, 0, 0]),
        ("math500", [1, 1, 1, 1]),
        ("math500", [0, 0, 0, 0]),
    ]
    path = write_dump(tmp_path / "dump", 100, questions)
    countdown = one_score(path, 8)
    assert (countdown.pass_at_k, countdown.avg, countdown.questions) == (0.5, 0.0625, 2)
    math500 = one_score(path, 2, source="math500")
    assert math500.pass_at_k == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert math500.avg == pytest.approx(0.5) and math500.questions == 3
    with pytest.raises(ValueError, match=r"step 100, math500: .*n=4"):
        exact_scores(tally_dump(path), 8)


def test_samples_group_by_prompt_uid_and_a_multi_turn_session_counts_once(tmp_path):
    lines = dump_lines(0, [("countdown", [1, 0]), ("countdown", [0, 0])])
    for line in lines:
        line["input"] = "the same prompt text twice in the test set"
    # A second turn of session 0 of the first prompt: verl dumps every turn with the session's final score.
    lines.append(lines[0] | {"uid": "prompt-countdown-0_0_1", "output": "turn two"})
    directory = tmp_path / "dump"
    directory.mkdir()
    (directory / "0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    score = one_score(directory, 2)
    assert (score.questions, score.min_samples, score.max_samples) == (2, 2, 2)
    assert score.pass_at_k == 0.5 and score.avg == 0.25


def test_without_uid_samples_group_by_prompt_text(tmp_path):
    path = write_dump(tmp_path / "dump", 0, [("countdown", [1, 0]), ("countdown", [0, 0, 0])], uid=False)
    score = one_score(path, 2)
    assert (score.questions, score.min_samples, score.max_samples) == (2, 2, 3)
    assert score.pass_at_k == pytest.approx((1 + 0) / 2)


def test_acc_is_read_before_score_so_format_credit_is_not_a_pass(tmp_path):
    lines = [line | {"score": 0.1} for line in dump_lines(0, [("countdown", [0, 0])])]
    directory = tmp_path / "dump"
    directory.mkdir()
    (directory / "0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    score = one_score(directory, 2)
    assert (score.variable, score.avg, score.pass_at_k) == ("acc", 0.0, 0.0)


def test_score_is_the_fallback_when_no_sample_has_acc_and_that_is_said(tmp_path, caplog):
    lines = dump_lines(0, [("countdown", [1, 0])])
    lines = [{key: value for key, value in line.items() if key != "acc"} for line in lines]
    lines.append(lines[1] | {"uid": "prompt-countdown-0_2_0", "score": 0.1})  # format credit, not correct
    directory = tmp_path / "dump"
    directory.mkdir()
    (directory / "0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with caplog.at_level(logging.WARNING, logger="deltal.analysis.generations"):
        frame = load_generations([("run", directory)])
    assert "use score" in caplog.text
    values = dict(zip(frame["metric"], frame["value"], strict=True))
    assert values["exact/countdown/score/mean@3"] == pytest.approx(1.1 / 3)
    assert values["exact/countdown/score/pass@3"] == 1.0
    assert values["exact/countdown/score/pass@1"] == pytest.approx(1 / 3)


def test_a_dump_mixing_acc_and_score_only_samples_is_refused(tmp_path):
    lines = dump_lines(0, [("countdown", [1, 0])])
    del lines[1]["acc"]
    directory = tmp_path / "dump"
    directory.mkdir()
    (directory / "0.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(ValueError, match="1 samples have acc and 1 do not"):
        tally_dump(directory)


def test_export_rows_hold_every_k_up_to_the_sample_count_and_the_question_count(tmp_path):
    write_dump(tmp_path / "dump", 0, [("math500", [1, 1, 0, 0])])
    write_dump(tmp_path / "dump", 50, [("math500", [1, 1, 1, 1]), ("math500", [0, 0, 0, 1])])
    frame = load_generations([("math__delta_l__qwen2.5-7b__seed0", tmp_path / "dump")])
    values = {(row.step, row.metric): row.value for row in frame.itertuples()}
    assert values[(0, "exact/math500/acc/pass@2")] == pytest.approx(5 / 6)
    assert values[(0, "exact/math500/acc/mean@4")] == 0.5
    assert values[(50, "exact/math500/acc/pass@1")] == pytest.approx((1 + 0.25) / 2)
    assert values[(50, "exact/math500/questions")] == 2
    assert not any(metric.endswith("@5") for _, metric in values)
    assert set(frame["task"]) == {"math"} and set(frame["method"]) == {"delta_l"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"input": "q", "output": "a", "score": 1.0, "step": 50}\n', r"missing \['data_source'\]"),
        ('{"input": "q", "output": "a", "score": 1.0, "step": 50, "data_source": "countdown", "acc": "yes"}\n', "acc="),
        ('{"input": "q", "score": 1.0, "step": "fifty", "data_source": "countdown"}\n', "not an integer"),
        ('{"input": "q", "score": 1.0, "step": 50, "data_source": "count', "not valid JSON"),
        ("[1, 2]\n", "not a JSON object"),
    ],
)
def test_a_malformed_dump_line_names_the_verl_setting(tmp_path, content, problem):
    path = tmp_path / "50.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as caught:
        tally_dump(path)
    assert "50.jsonl:1" in str(caught.value) and "trainer.validation_data_dir" in str(caught.value)


def test_a_folder_without_step_files_names_the_verl_setting(tmp_path):
    (tmp_path / "notes.jsonl").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match="trainer.validation_data_dir"):
        tally_dump(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tally_dump(tmp_path / "absent")


@pytest.fixture
def exact_grpo_dump(tmp_path):
    """GRPO's step-50 validation, 5 questions: Avg@8 = 24/40 = 0.6 (as verl logged), exact Pass@8 = 1 (verl: 0.8)."""
    accs = [[1] * count + [0] * (8 - count) for count in (5, 5, 5, 5, 4)]
    return write_dump(tmp_path / "grpo_dump", 50, [("countdown", sample) for sample in accs]).parent


def test_metrics_prefer_exact_rows_and_fall_back_to_verl_with_a_bias_warning(log_root, exact_grpo_dump, caplog):
    frame = pd.concat([load_file_logs([log_root]), load_generations([(GRPO, exact_grpo_dump)])], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="deltal.analysis.metrics"):
        passes = validation_scores(frame[frame["run"] == GRPO], "pass", k=8)
    assert list(passes["step"]) == [0, 50, 100, 150]
    assert list(passes["value"]) == [0.3, 1.0, 0.7, 0.95]
    assert list(passes["source"]) == ["verl", "exact", "verl", "verl"]
    assert list(passes["questions"].fillna(-1)) == [-1, 5, -1, -1]
    warnings = [record for record in caplog.records if "biased low" in record.getMessage()]
    assert len(warnings) == 1 and "--generations" in warnings[0].getMessage()
    avg = validation_scores(frame[frame["run"] == GRPO], "avg", k=8)
    assert avg.loc[avg["step"] == 50, "value"].item() == pytest.approx(0.6)


def test_no_bias_warning_when_every_pass_is_exact(exact_grpo_dump, caplog):
    frame = load_generations([(GRPO, exact_grpo_dump)])
    with caplog.at_level(logging.WARNING, logger="deltal.analysis.metrics"):
        passes = validation_scores(frame, "pass", k=8)
    assert list(passes["value"]) == [1.0]
    assert "biased low" not in caplog.text


def test_k_above_the_dump_sample_count_raises_instead_of_falling_back(log_root, tmp_path):
    dump = write_dump(tmp_path / "dump", 50, [("countdown", [1, 0, 0, 0])]).parent
    frame = pd.concat([load_file_logs([log_root]), load_generations([(GRPO, dump)])], ignore_index=True)
    with pytest.raises(ValueError, match=r"step\(s\) \[50\] has at most 4 samples.*--k 4"):
        validation_scores(frame[frame["run"] == GRPO], "pass", k=8)


def test_math_weighted_average_uses_the_counted_questions(log_root, tmp_path, caplog):
    # Step 100 re-evaluated exactly with 1 minerva, 1 aime2024, 2 math500 and 1 amc questions.
    questions = [
        ("minerva", [1] * 8),
        ("aime2024", [0] * 8),
        ("math500", [1] * 4 + [0] * 4),
        ("math500", [0] * 8),
        ("amc", [1] * 2 + [0] * 6),
    ]
    dump = write_dump(tmp_path / "dump", 100, questions).parent
    frame = pd.concat([load_file_logs([log_root]), load_generations([(MATH_RUN, dump)])], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="deltal.analysis.metrics"):
        scores = task_scores(frame, "math").set_index("step")["score"]
    assert scores[100] == pytest.approx((1 * 1.0 + 1 * 0.0 + 2 * 0.25 + 1 * 0.25) / 5)
    logged = MATH_SCORES[50]
    assert scores[50] == pytest.approx(
        sum(n * logged[d] for d, n in (("minerva", 272), ("aime2024", 30), ("math500", 500), ("amc", 83))) / 885
    )
    assert "counted in the validation dumps" in caplog.text


def test_cli_export_with_generations_gives_the_table_the_exact_pass_at_8(log_root, exact_grpo_dump, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    assert main(["export", str(log_root), "--generations", f"{GRPO}={exact_grpo_dump}", "--out", str(out)]) == 0
    exported = pd.read_csv(out)
    exact = exported[exported["metric"].str.startswith("exact/")]
    assert set(exact["run"]) == {GRPO} and set(exact["task"]) == {"countdown"}
    assert main(["table", "--kind", "countdown", str(out)]) == 0
    markdown = capsys.readouterr().out
    assert "| GRPO Norm | 0.600 | **1.000** |" in markdown  # verl's bootstrap said 0.800
    assert "| ΔL Norm | **1.000** | **1.000** |" in markdown


def test_cli_export_of_generations_alone_infers_the_task_from_data_sources(exact_grpo_dump, tmp_path):
    out = tmp_path / "runs.csv"
    assert main(["export", "--generations", f"plain-run={exact_grpo_dump / '50.jsonl'}", "--out", str(out)]) == 0
    exported = pd.read_csv(out)
    assert set(exported["task"]) == {"countdown"} and set(exported["method"]) == {"plain-run"}


def test_cli_rejects_a_generations_value_without_a_run_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["export", "--generations", str(tmp_path), "--out", str(tmp_path / "x.csv")])
    assert caught.value.code == 2 and "RUN=DIR" in capsys.readouterr().err


def test_cli_reports_a_missing_dump_folder(log_root, tmp_path, capsys):
    args = ["export", str(log_root), "--generations", f"{GRPO}={tmp_path / 'absent'}", "--out", str(tmp_path / "x.csv")]
    assert main(args) == 2
    assert "trainer.validation_data_dir" in capsys.readouterr().err


def test_cli_warns_when_a_generations_run_matches_no_log(log_root, exact_grpo_dump, tmp_path, capsys):
    out = tmp_path / "runs.csv"
    assert main(["export", str(log_root), "--generations", f"typo-run={exact_grpo_dump}", "--out", str(out)]) == 0
    assert "typo-run" in capsys.readouterr().err
