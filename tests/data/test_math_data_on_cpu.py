"""The math data builder turns ORZ training JSON, ORZ eval JSON, JSON/JSONL records and saved HF datasets into verl
parquet rows with the right data_source, prompt template and string ground truth, and stops with a message naming
the expected format when a file is missing or malformed."""

import json

import datasets
import pytest

from deltal.data import math as math_data
from deltal.data.rl_format import read_parquet

ORZ_TRAIN = [
    [{"from": "human", "value": "What is 1+1?"}, {"from": "assistant", "ground_truth": {"value": "2"}}],
    [{"from": "human", "value": "Simplify 2/4."}, {"from": "assistant", "ground_truth": {"value": "\\frac{1}{2}"}}],
]
ORZ_EVAL = [
    {"prompt": [{"from": "human", "value": "Compute 3*3."}], "final_answer": "9"},
    {"prompt": "Compute 2^5.", "final_answer": "32"},
]


def write_json(path, payload):
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def test_build_writes_train_and_eval_parquets_with_their_data_sources(tmp_path):
    train = write_json(tmp_path / "orz.json", ORZ_TRAIN)
    math500 = write_json(tmp_path / "math500.json", ORZ_EVAL)
    minerva = tmp_path / "minerva.jsonl"
    minerva.write_text('{"question": "Speed of light?", "answer": "3\\\\times10^8"}\n\n', encoding="utf-8")
    amc = tmp_path / "amc_hf"
    datasets.Dataset.from_list([{"problem": "AMC q", "answer": 142.0, "url": "x"}]).save_to_disk(str(amc))

    written = math_data.build(
        tmp_path / "out", train, {"math500": math500, "aime2024": None, "amc": amc, "minerva": minerva}
    )
    assert sorted(path.name for path in written) == [
        "amc.parquet",
        "math500.parquet",
        "minerva.parquet",
        "train.parquet",
    ]

    train_rows = read_parquet(tmp_path / "out" / "train.parquet")
    assert [row["data_source"] for row in train_rows] == ["open_reasoner_zero"] * 2
    assert [row["reward_model"]["ground_truth"] for row in train_rows] == ["2", "\\frac{1}{2}"]
    assert [row["extra_info"]["index"] for row in train_rows] == [0, 1]
    prompt = train_rows[1]["prompt"]
    assert len(prompt) == 1 and prompt[0]["role"] == "user"
    assert "Simplify 2/4." in prompt[0]["content"] and "\\boxed{}" in prompt[0]["content"]
    assert prompt[0]["content"].endswith("Assistant: <think>")

    eval_rows = read_parquet(tmp_path / "out" / "math500.parquet")
    assert [row["reward_model"]["ground_truth"] for row in eval_rows] == ["9", "32"]
    assert all(row["data_source"] == "math500" and row["extra_info"]["split"] == "test" for row in eval_rows)
    assert read_parquet(tmp_path / "out" / "amc.parquet")[0]["reward_model"]["ground_truth"] == "142"
    assert read_parquet(tmp_path / "out" / "minerva.parquet")[0]["reward_model"]["ground_truth"] == "3\\times10^8"


def test_instruct_template_stores_the_question_as_a_chat_message_without_the_base_scaffold():
    (message,) = math_data.format_prompt("What is 1+1?", "instruct")
    assert message["role"] == "user"
    assert message["content"].startswith("What is 1+1?") and "\\boxed{}" in message["content"]
    assert "<think>" not in message["content"]
    with pytest.raises(ValueError, match="base"):
        math_data.format_prompt("q", "chatml")


def test_command_line_builds_files_and_reports_them(tmp_path, capsys):
    train = write_json(tmp_path / "orz.json", ORZ_TRAIN)
    aime = write_json(tmp_path / "aime.json", ORZ_EVAL)
    math_data.main(["--out", str(tmp_path / "out"), "--orz-train", str(train), "--aime2024", str(aime)])
    assert "aime2024.parquet" in capsys.readouterr().out
    assert len(read_parquet(tmp_path / "out" / "aime2024.parquet")) == 2


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"not": "a list"}, "holds no records"),
        ([{"from": "human", "value": "q"}], "two-turn conversation"),
        ([[{"from": "human", "value": "q"}, {"from": "assistant", "value": "2"}]], "ground_truth.value"),
        ([[{"from": "human", "value": " "}, {"from": "assistant", "ground_truth": {"value": "2"}}]], "no question"),
        ([[{"from": "human", "value": "q"}, {"from": "assistant", "ground_truth": {"value": ""}}]], "has an answer"),
    ],
)
def test_malformed_orz_training_data_raises_naming_the_expected_format(tmp_path, payload, message):
    with pytest.raises(math_data.MathDataError, match=message):
        math_data.read_orz_train(write_json(tmp_path / "orz.json", payload))


def test_missing_or_invalid_files_raise_naming_the_expected_format(tmp_path):
    with pytest.raises(math_data.MathDataError, match="does not exist.*orz_math_57k_collected"):
        math_data.read_orz_train(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("[{", encoding="utf-8")
    with pytest.raises(math_data.MathDataError, match="not valid JSON"):
        math_data.read_eval_records(tmp_path / "broken.json")
    with pytest.raises(math_data.MathDataError, match="has fields.*expected"):
        math_data.read_eval_records(write_json(tmp_path / "wrong.json", [{"q": "x", "a": "1"}]))
    (tmp_path / "bad.jsonl").write_text('{"problem": "x", "answer": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(math_data.MathDataError, match="line 2"):
        math_data.read_eval_records(tmp_path / "bad.jsonl")


def test_command_line_exits_with_status_2_and_a_message_on_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        math_data.main(["--out", str(tmp_path), "--orz-train", str(tmp_path / "absent.json")])
    assert exit_info.value.code == 2
    assert "deltal.data.math:" in capsys.readouterr().err
