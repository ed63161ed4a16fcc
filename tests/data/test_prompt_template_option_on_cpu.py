"""The builders' ``--prompt-template FILE`` reproduces a user-supplied prompt exactly (placeholders filled, every other
character kept), rejects a file without its placeholders with exit status 2, and CountDown ingest defaults to the
reference's 327,680 training rows."""

from __future__ import annotations

import json

import pytest

from deltal.data import countdown
from deltal.data import math as math_data
from deltal.data.rl_format import read_parquet

# A prompt with the characters a naive str.format would choke on: braces, \boxed{}, a trailing newline.
COUNTDOWN_PROMPT = (
    "User: Using the numbers {numbers}, create an equation that equals {target}. Use {each} once; "
    "answer in <answer> </answer>.\nAssistant: Let me solve this step by step.\n<think>"
)
MATH_PROMPT = "User: {question}\nPut the final answer in \\boxed{}.\nAssistant: <think>"


def test_countdown_prompt_template_fills_numbers_and_target_and_keeps_everything_else(tmp_path):
    template = tmp_path / "prompt.txt"
    template.write_text(COUNTDOWN_PROMPT, encoding="utf-8")
    train, _ = countdown.build(tmp_path / "out", train_size=4, test_size=2, prompt_template=template)
    rows = read_parquet(train)
    for row in rows:
        numbers, target = row["reward_model"]["ground_truth"]["numbers"], row["reward_model"]["ground_truth"]["target"]
        expected = COUNTDOWN_PROMPT.replace("{numbers}", str(list(numbers))).replace("{target}", str(target))
        assert [dict(message) for message in row["prompt"]] == [{"role": "user", "content": expected}]
    assert "{each}" in rows[0]["prompt"][0]["content"]


def test_countdown_prompt_template_without_placeholders_exits_2(tmp_path, capsys):
    template = tmp_path / "prompt.txt"
    template.write_text("Solve {numbers}.", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        countdown.main(["--out", str(tmp_path / "out"), "--train-size", "2", "--prompt-template", str(template)])
    assert exit_info.value.code == 2
    assert "lacks ['{target}']" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        countdown.main(["--out", str(tmp_path / "out"), "--prompt-template", str(tmp_path / "absent.txt")])
    assert exit_info.value.code == 2


def test_countdown_ingest_defaults_to_the_reference_training_size(tmp_path, monkeypatch):
    seen = {}

    def fake_load(path, train_size, test_size):
        seen.update(train_size=train_size, test_size=test_size)
        return [((1, 2, 3), 6)], [((1, 2, 3), 6)]

    monkeypatch.setattr(countdown, "load_source", fake_load)
    countdown.main(["--out", str(tmp_path / "out"), "--source", str(tmp_path / "tasks.parquet")])
    assert seen == {"train_size": 327_680, "test_size": 1024}


def test_math_prompt_template_fills_the_question_and_keeps_boxed_braces(tmp_path):
    orz = tmp_path / "orz.json"
    orz.write_text(
        json.dumps(
            [[{"from": "human", "value": "What is 1+1?"}, {"from": "assistant", "ground_truth": {"value": "2"}}]]
        )
    )
    template = tmp_path / "prompt.txt"
    template.write_text(MATH_PROMPT, encoding="utf-8")
    (train,) = math_data.build(tmp_path / "out", orz, {}, prompt_template=template)
    (row,) = read_parquet(train)
    assert row["prompt"][0]["content"] == MATH_PROMPT.replace("{question}", "What is 1+1?")


def test_math_prompt_template_without_question_exits_2(tmp_path, capsys):
    template = tmp_path / "prompt.txt"
    template.write_text("Solve it in \\boxed{}.", encoding="utf-8")
    argv = ["--out", str(tmp_path), "--orz-train", str(tmp_path / "orz.json"), "--prompt-template", str(template)]
    with pytest.raises(SystemExit) as exit_info:
        math_data.main(argv)
    assert exit_info.value.code == 2
    assert "lacks {question}" in capsys.readouterr().err
