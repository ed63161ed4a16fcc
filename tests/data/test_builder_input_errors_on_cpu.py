"""Every bad input file given to the data builders (``deltal.data.math``, ``deltal.data.countdown --source``) ends in
exit status 2 with a message naming the file, the line or record, and the rule broken, never a traceback: deeply
nested JSON, integers past Python's 4300-digit limit, non-UTF-8 bytes, folders, corrupt parquet, out-of-range
numbers. A math record whose answer is NaN or empty is skipped and counted, never written as the ground truth "nan"."""

import json
import logging

import pytest

from deltal.data import countdown, math
from deltal.data.rl_format import read_parquet

GOOD_TURN = [{"from": "human", "value": "What is 1+1?"}, {"from": "assistant", "ground_truth": {"value": "2"}}]
DEEP = "[" * 100_000 + "]" * 100_000
LONG_INT = "7" * 5000


def orz_with_answer(answer_json: str) -> str:
    bad = '[{"from": "human", "value": "q"}, {"from": "assistant", "ground_truth": {"value": ' + answer_json + "}}]"
    return "[" + json.dumps(GOOD_TURN) + ",\n" + bad + "]"


def run_cli(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (orz_with_answer(DEEP), "line 2 (record 1) nests JSON"),
        (orz_with_answer(LONG_INT), "line 2 (record 1) holds an integer of 5000 digits"),
        (orz_with_answer("[1, 2]"), "item 1: the answer must be a string or a number, got list"),
        ('[{"from": "human"', "line 1 (record 0) is not valid JSON"),
        ('{"not": "a list"}', "holds no records (it is a JSON dict, not a list)"),
    ],
    ids=["deep", "long-int", "list-answer", "truncated", "not-a-list"],
)
def test_math_builder_exits_2_naming_file_record_and_rule(tmp_path, capsys, content, rule):
    source = tmp_path / "orz.json"
    source.write_text(content, encoding="utf-8")
    message = run_cli(math.main, ["--out", str(tmp_path / "out"), "--orz-train", str(source)], capsys)
    assert str(source) in message and rule in message
    assert "Traceback" not in message


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("minerva.jsonl", '{"problem": "q", "answer": 1}\n{"problem": "q", "answer": ' + DEEP + "}\n", "line 2 nests"),
        ("minerva.jsonl", '{"problem": "q", "answer": ' + LONG_INT + "}\n", "line 1 holds an integer of 5000"),
        ("minerva.jsonl", b'{"problem": "caf\xe9", "answer": "1"}\n', "line 1 is not UTF-8 text (byte 0xe9)"),
    ],
    ids=["deep", "long-int", "latin-1"],
)
def test_math_builder_locates_errors_in_jsonl_eval_files(tmp_path, capsys, name, content, rule):
    train = tmp_path / "orz.json"
    train.write_text(json.dumps([GOOD_TURN]), encoding="utf-8")
    source = tmp_path / name
    source.write_bytes(content if isinstance(content, bytes) else content.encode())
    argv = ["--out", str(tmp_path / "out"), "--orz-train", str(train), "--minerva", str(source)]
    message = run_cli(math.main, argv, capsys)
    assert str(source) in message and rule in message


def test_math_builder_rejects_a_folder_given_as_a_json_file(tmp_path, capsys):
    folder = tmp_path / "orz.json"
    folder.mkdir()
    message = run_cli(math.main, ["--out", str(tmp_path / "out"), "--orz-train", str(folder)], capsys)
    assert f"{folder} is a folder, not a file" in message


@pytest.mark.parametrize("answer", ["NaN", "Infinity", '""', '"   "'])
def test_a_math_record_without_a_real_answer_is_skipped_and_counted(tmp_path, caplog, answer):
    source = tmp_path / "orz.json"
    source.write_text(orz_with_answer(answer), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="deltal.data.math"):
        math.main(["--out", str(tmp_path / "out"), "--orz-train", str(source)])
    rows = read_parquet(tmp_path / "out" / "train.parquet")
    assert [row["reward_model"]["ground_truth"] for row in rows] == ["2"]
    assert f"{source}: skipped 1 of 2 records with an empty or NaN answer (records 1)" in caplog.text


def test_a_math_file_with_no_real_answer_at_all_exits_2(tmp_path, capsys):
    source = tmp_path / "math500.json"
    source.write_text('[{"problem": "q", "answer": NaN}]', encoding="utf-8")
    train = tmp_path / "orz.json"
    train.write_text(json.dumps([GOOD_TURN]), encoding="utf-8")
    argv = ["--out", str(tmp_path / "out"), "--orz-train", str(train), "--math500", str(source)]
    assert "none of its 1 records has an answer" in run_cli(math.main, argv, capsys)


ROW = '{"target": 10, "nums": [1, 2, 3]}'


@pytest.mark.parametrize(
    ("name", "content", "rule"),
    [
        ("deep.json", "[" + ROW + ', {"target": 10, "nums": ' + DEEP + "}]", "line 1 (record 1) nests JSON"),
        ("long.json", "[" + ROW + ",\n" + '{"target": ' + LONG_INT + ', "nums": [1]}]', "line 2 (record 1) holds an"),
        ("deep.jsonl", ROW + "\n" + DEEP + "\n", "line 2 nests JSON"),
        ("huge.jsonl", ROW + '\n{"target": ' + "7" * 30 + ', "nums": [1, 2]}\n', "row 1 has target=7777"),
        ("nan.jsonl", ROW + '\n{"target": NaN, "nums": [1, 2]}\n', "row 1 has target=nan"),
        ("latin.jsonl", ROW + "\n\xe9\n", "line 2 is not UTF-8 text"),
        ("bad.parquet", "PAR1 not really parquet", "not a readable parquet file"),
    ],
    ids=["deep-json", "long-int-json", "deep-jsonl", "int64-overflow", "nan-target", "latin-1", "corrupt-parquet"],
)
def test_countdown_source_exits_2_naming_file_row_and_rule(tmp_path, capsys, name, content, rule):
    source = tmp_path / name
    source.write_bytes(content.encode("latin-1") if name.startswith("latin") else content.encode())
    argv = ["--out", str(tmp_path / "out"), "--source", str(source), "--train-size", "1", "--test-size", "1"]
    message = run_cli(countdown.main, argv, capsys)
    assert str(source) in message and rule in message
    assert "Traceback" not in message
