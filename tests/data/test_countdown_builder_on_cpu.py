"""The CountDown builder writes verl RL rows whose generated instances are all solvable and in range, is
deterministic for a seed, keeps test disjoint from train, and ingests local dataset copies (parquet, JSON, JSONL)
with clear errors for missing files, wrong columns and too few rows."""

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deltal.data.countdown import build, instance_key, main
from deltal.data.rl_format import read_parquet
from deltal.data.solver import is_solvable, solve
from deltal.rewards import compute_score


def _instances(path):
    return [
        (row["reward_model"]["ground_truth"]["numbers"], row["reward_model"]["ground_truth"]["target"])
        for row in read_parquet(path)
    ]


@pytest.fixture(scope="module")
def standard(tmp_path_factory):
    out = tmp_path_factory.mktemp("standard")
    return build(out, train_size=80, test_size=30, seed=1)


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    out = tmp_path_factory.mktemp("easy")
    return build(out, train_size=400, test_size=100, seed=1, variant="easy")


def test_rows_follow_verls_rl_format(standard):
    row = read_parquet(standard[0])[0]
    assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert row["data_source"] == "countdown" and row["reward_model"]["style"] == "rule"
    assert row["extra_info"] == {"split": "train", "index": 0}
    assert [r["extra_info"]["index"] for r in read_parquet(standard[1])] == list(range(30))


def test_generated_standard_instances_are_solvable_and_in_range(standard):
    for numbers, target in _instances(standard[0]) + _instances(standard[1]):
        assert len(numbers) in (3, 4) and all(1 <= n <= 99 for n in numbers)
        assert 10 <= target <= 100
        assert is_solvable(numbers, target)
    counts = {len(numbers) for numbers, _ in _instances(standard[0])}
    assert counts == {3, 4}


def test_generated_easy_instances_are_solvable_small_and_strictly_scored(easy):
    for numbers, target in _instances(easy[0]) + _instances(easy[1]):
        assert len(numbers) == 3 and all(1 <= n <= 10 for n in numbers) and 1 <= target <= 100
        solutions = solve(numbers, target)
        assert solutions, (numbers, target)
        gt = {"target": target, "numbers": numbers}
        assert compute_score("countdown_easy", f"<answer>{solutions[0]}</answer>", gt)["score"] == 1.0
    row = read_parquet(easy[0])[0]
    numbers, target = row["reward_model"]["ground_truth"]["numbers"], row["reward_model"]["ground_truth"]["target"]
    assert row["data_source"] == "countdown_easy"
    assert row["prompt"] == [{"role": "user", "content": f"Use {' '.join(map(str, numbers))} to make {target}."}]


@pytest.mark.parametrize("fixture", ["standard", "easy"])
def test_test_split_is_unique_and_disjoint_from_train(fixture, request):
    train_path, test_path = request.getfixturevalue(fixture)
    test_keys = [instance_key(*instance) for instance in _instances(test_path)]
    train_keys = {instance_key(*instance) for instance in _instances(train_path)}
    assert len(set(test_keys)) == len(test_keys)
    assert not train_keys & set(test_keys)


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path, easy):
    again = build(tmp_path / "again", train_size=400, test_size=100, seed=1, variant="easy")
    other = build(tmp_path / "other", train_size=400, test_size=100, seed=2, variant="easy")
    assert read_parquet(again[0]) == read_parquet(easy[0]) and read_parquet(again[1]) == read_parquet(easy[1])
    assert _instances(other[0]) != _instances(easy[0])


def test_base_and_instruct_templates_hold_the_same_problem(tmp_path):
    base = read_parquet(build(tmp_path / "b", train_size=3, test_size=1, seed=9, template="base")[0])
    chat = read_parquet(build(tmp_path / "i", train_size=3, test_size=1, seed=9, template="instruct")[0])
    assert [r["reward_model"] for r in base] == [r["reward_model"] for r in chat]
    text = base[0]["prompt"][0]["content"]
    numbers, target = (
        base[0]["reward_model"]["ground_truth"]["numbers"],
        base[0]["reward_model"]["ground_truth"]["target"],
    )
    assert len(base[0]["prompt"]) == 1 and f"Using the numbers {numbers}" in text and f"equals {target}." in text
    assert text.endswith("Assistant: Let me solve this step by step.\n<think>")
    assert [m["role"] for m in chat[0]["prompt"]] == ["system", "user"]
    assert "<answer> </answer>" in chat[0]["prompt"][1]["content"]


def test_easy_variant_refuses_the_base_template(tmp_path):
    with pytest.raises(ValueError, match="--template instruct"):
        build(tmp_path, variant="easy", template="base")


ROWS = [{"target": 10 + i, "nums": [i + 1, 2, 3]} for i in range(12)]


def _write_source(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".json", ".jsonl"])
def test_source_ingest_takes_the_first_rows_for_train_and_the_next_for_test(tmp_path, suffix):
    source = _write_source(tmp_path / f"countdown{suffix}", ROWS)
    train_path, test_path = build(tmp_path / "out", train_size=8, test_size=3, source=source)
    assert _instances(train_path) == [(r["nums"], r["target"]) for r in ROWS[:8]]
    assert _instances(test_path) == [(r["nums"], r["target"]) for r in ROWS[8:11]]


def test_source_errors_name_the_expected_format(tmp_path):
    expected = re.escape("'target' (int) and 'nums' (list of int)")
    with pytest.raises(FileNotFoundError, match=expected):
        build(tmp_path / "o", source=tmp_path / "missing.parquet")
    wrong_columns = _write_source(tmp_path / "cols.parquet", [{"goal": 1, "numbers": [1]}])
    with pytest.raises(ValueError, match=r"columns \['target', 'nums'\] are missing"):
        build(tmp_path / "o", source=wrong_columns)
    few = _write_source(tmp_path / "few.jsonl", ROWS)
    with pytest.raises(ValueError, match="it has 12 rows but --train-size \\+ --test-size needs 20"):
        build(tmp_path / "o", train_size=16, test_size=4, source=few)
    bad_row = _write_source(tmp_path / "bad.json", ROWS[:3] + [{"target": "7", "nums": [1, 2]}])
    with pytest.raises(ValueError, match="row 3 has target='7'"):
        build(tmp_path / "o", train_size=3, test_size=1, source=bad_row)
    (tmp_path / "data.csv").write_text("target,nums\n")
    with pytest.raises(ValueError, match="unknown file type '.csv'"):
        build(tmp_path / "o", source=tmp_path / "data.csv")


def test_cli_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    # One phrase from each flag's help: a flag added without a description fails here.
    described = {
        "--out": "train.parquet and test.parquet",
        "--train-size": "number of training problems",
        "--test-size": "number of held-out problems",
        "--template": "RAW_PROMPT_CHAT_TEMPLATE",
        "--seed": "seed of the generator",
        "--source": "ingest instead of generating",
        "--variant": "data_source countdown_easy",
    }
    for flag, phrase in described.items():
        assert flag in help_text and phrase in help_text, flag


def test_cli_writes_both_splits_and_reports_bad_input_as_a_usage_error(tmp_path, capsys):
    main(["--out", str(tmp_path / "cli"), "--train-size", "5", "--test-size", "2", "--variant", "easy"])
    assert len(read_parquet(tmp_path / "cli" / "train.parquet")) == 5
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path / "x"), "--source", str(tmp_path / "nope.json")])
    assert info.value.code == 2
