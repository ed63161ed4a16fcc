"""The countdown_trace builder: a fixed search order, traces that stop at the first hit, seed-deterministic splits
that do not overlap, warm-start targets whose lengths span more than 10x (p90 over p10 on a small sample), and the
full-trace reward's data: the same problems under the data source ``countdown_trace_full``."""

import random

import pytest

from deltal.data import countdown_trace
from deltal.data.rl_format import read_parquet
from deltal.rewards.countdown import evaluate_expression


def test_search_order_starts_with_the_first_pair_and_puts_larger_operands_first():
    lines = [candidate.line() for candidate in countdown_trace.candidates((3, 5, 7))]
    assert lines[:3] == ["3+5=8,8+7=15", "3+5=8,8-7=1", "3+5=8,8*7=56"]  # 8/7 is inexact: skipped
    assert lines[3] == "5-3=2,2+7=9"  # - puts the larger operand first, so intermediates stay >= 0
    assert lines[4] == "5-3=2,7-2=5"
    # Inexact divisions are skipped: 5/3 and 7/3 never appear.
    assert not any(line.startswith(("5/3", "7/3")) for line in lines)


def test_trace_stops_at_the_first_candidate_that_reaches_the_target():
    text = countdown_trace.response_text((3, 5, 7), 56)
    assert text == "3+5=8,8+7=15\n3+5=8,8-7=1\n3+5=8,8*7=56\n<answer>(3+5)*7</answer>"
    assert countdown_trace.depth((3, 5, 7), 56) == 3
    assert countdown_trace.depth((3, 5, 7), 15) == 1
    assert countdown_trace.trace((1, 1, 1), 999) is None


@pytest.mark.parametrize("seed", [0, 1])
def test_every_drawn_answer_evaluates_to_its_target_with_each_number_once(seed):
    rng = random.Random(seed)
    for _ in range(300):
        numbers, target = countdown_trace.draw(rng)
        lines = countdown_trace.trace(numbers, target)
        assert 1 <= len(lines) <= countdown_trace.DEFAULT_MAX_DEPTH
        value, used = evaluate_expression(lines[-1].expression())
        assert value == target and sorted(used) == sorted(numbers)
        assert all(candidate.second.value != target for candidate in lines[:-1])


def test_builder_is_seed_deterministic_and_splits_do_not_overlap(tmp_path):
    first = countdown_trace.build(tmp_path / "a", train_size=40, test_size=20, seed=3)
    again = countdown_trace.build(tmp_path / "b", train_size=40, test_size=20, seed=3)
    other = countdown_trace.build(tmp_path / "c", train_size=40, test_size=20, seed=4)
    assert read_parquet(first[0]) == read_parquet(again[0]) and read_parquet(first[1]) == read_parquet(again[1])
    assert read_parquet(first[1]) != read_parquet(other[1])
    train, test = read_parquet(first[0]), read_parquet(first[1])

    def key(row):
        truth = row["reward_model"]["ground_truth"]
        return tuple(truth["numbers"]), truth["target"]

    assert len({key(row) for row in test}) == 20
    assert not {key(row) for row in train} & {key(row) for row in test}
    row = test[0]
    assert row["data_source"] == "countdown_trace"
    truth = row["reward_model"]["ground_truth"]
    assert truth["depth"] == countdown_trace.depth(truth["numbers"], truth["target"])
    assert row["prompt"][0]["content"] == countdown_trace.prompt_text(truth["numbers"], truth["target"])


def test_the_full_trace_reward_writes_the_same_problems_under_its_own_data_source(tmp_path, capsys):
    last = countdown_trace.build(tmp_path / "last", train_size=30, test_size=10, seed=5)
    full = countdown_trace.build(tmp_path / "full", train_size=30, test_size=10, seed=5, reward="full_trace")
    for last_file, full_file in zip(last, full, strict=True):
        last_rows, full_rows = read_parquet(last_file), read_parquet(full_file)
        assert {row["data_source"] for row in full_rows} == {"countdown_trace_full"}
        assert [{**row, "data_source": None} for row in last_rows] == [
            {**row, "data_source": None} for row in full_rows
        ]
    with pytest.raises(SystemExit) as stopped:
        countdown_trace.main(["--out", str(tmp_path / "x"), "--reward", "every_line"])
    assert stopped.value.code == 2 and "full_trace" in capsys.readouterr().err


def test_bad_sizes_and_numbers_are_refused(tmp_path):
    with pytest.raises(ValueError, match="must be positive"):
        countdown_trace.build(tmp_path, train_size=0, test_size=4)
    with pytest.raises(ValueError, match="exactly 3"):
        countdown_trace.candidates((1, 2))


def test_warm_start_targets_span_more_than_ten_times_in_tokens(tiny_trace_tokenizer):
    # Length spread of the supervised targets on a small sample (the model's own spread at T=1 is measured by
    # python -m deltal.cpu.warmstart_trace and logged in docs/experiments.md).
    import numpy as np

    rng = random.Random(0)
    lengths = [
        len(tiny_trace_tokenizer.encode(countdown_trace.response_text(*countdown_trace.draw(rng)))) + 1
        for _ in range(300)
    ]
    p10, p90 = np.percentile(lengths, [10, 90])
    assert p90 / p10 >= 10, (p10, p90)
