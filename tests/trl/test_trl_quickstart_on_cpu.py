"""``deltal trl-quickstart`` end to end on CPU: TRL's GRPOTrainer with ΔL trains the tiny local model on easy CountDown
with deltal's reward (no downloads, no vLLM) for 3 steps of 2 prompts x 4 completions in 2 accumulation steps,
logs ΔL's metrics at every step (α, weights of mean 1 that vary with the lengths, the variance telemetry), writes
them to metrics.jsonl and prints its summary line; bad options exit 2 with a message that names the option."""

import json
import math

import pytest
import torch

from deltal.data.countdown import build
from deltal.quickstart.trl import main

STEPS = 3


@pytest.fixture
def easy_data(tmp_path):
    build(tmp_path / "data", train_size=64, test_size=8, seed=0, variant="easy")
    return tmp_path / "data"


@pytest.fixture
def keep_torch_threads():
    threads = torch.get_num_threads()  # the quickstart sets deltal's CPU thread count for the process
    yield
    torch.set_num_threads(threads)


def quickstart_args(model_dir, data, out, *extra) -> list[str]:
    return [
        "--model", str(model_dir), "--data", str(data), "--out", str(out), "--steps", str(STEPS), "--prompts", "2",
        "--num-generations", "4", "--grad-accum", "2", "--max-completion-length", "16", *extra,
    ]  # fmt: skip


def test_trl_quickstart_trains_with_delta_l_and_reports(
    tiny_model_dir, easy_data, tmp_path, capsys, keep_torch_threads
):
    assert main(quickstart_args(tiny_model_dir, easy_data, tmp_path / "run")) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"trl-quickstart: alpha=1 scope=batch steps={STEPS} reward_first=")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == list(range(1, STEPS + 1))
    for record in records:
        assert math.isfinite(record["loss"]) and math.isfinite(record["grad_norm"])
        assert 0.0 <= record["rewards/deltal_reward/mean"] <= 1.0
        assert record["deltal/alpha"] == 1.0
        assert record["deltal/adv_weight/mean"] == pytest.approx(1.0, abs=1e-5)
        assert record["deltal/variance/cv_ratio_to_optimal"] == pytest.approx(1.0, abs=1e-9)
        assert record["deltal/variance/cv_ratio/dr_grpo_norm"] >= 1.0
    assert any(record["deltal/adv_weight/max"] > record["deltal/adv_weight/min"] + 0.05 for record in records)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--alpha", "-1"], "delta_l_alpha=-1.0 is invalid"),
        (["--grad-accum", "3"], "choose a --grad-accum that divides 8"),
        (["--num-generations", "1"], "--num-generations must be >= 2"),
    ],
)
def test_a_bad_option_exits_2_naming_it(tiny_model_dir, easy_data, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main(quickstart_args(tiny_model_dir, easy_data, tmp_path / "run", *extra))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists(), "nothing is written before the options are checked"


def test_a_data_folder_without_train_parquet_names_the_builder(tiny_model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(quickstart_args(tiny_model_dir, tmp_path, tmp_path / "run"))
    assert "deltal data countdown --variant easy" in capsys.readouterr().err
