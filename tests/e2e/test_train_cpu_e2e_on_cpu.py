"""End to end on CPU: ``python -m deltal.train backend=cpu method=delta_l`` runs verl's whole v1 pipeline.

Property: on a CPU-only host, with a tiny local model and no downloads, deltal's trainer validates, takes two
training steps in which deltal's ΔL advantage weights are applied (logged ``deltal/*`` metrics: α = 1, weights of
mean 1 that vary when response lengths vary, and the variance telemetry) with a finite loss, writes a checkpoint,
and a second launch resumes from it and continues at step 3. Ray's temp dir, caches, logs and checkpoints all live
in ``tmp_path``.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from deltal.cpu.assets import build_tiny_assets

REPO = Path(__file__).resolve().parents[2]


def _records(path: Path) -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        merged.setdefault(record["step"], {}).update(record["data"])
    return merged


def _train(tmp_path: Path, model: Path, data: Path, log: Path, steps: int, extra: list[str]) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="dl-ray-", dir="/tmp")  # Ray socket paths must stay short
    env = {
        **os.environ,
        "VERL_PLATFORM": "cpu",
        "RAY_AUTH_MODE": "disabled",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets"),
        "HF_HUB_OFFLINE": "1",
        "VERL_FILE_LOGGER_PATH": str(log),
    }
    command = [
        sys.executable,
        "-m",
        "deltal.train",
        "backend=cpu",
        "method=delta_l",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'test.parquet'}",
        "data.train_batch_size=4",
        "data.val_batch_size=16",
        "data.max_prompt_length=32",
        "data.max_response_length=16",
        f"actor_rollout_ref.model.path={model}",
        "actor_rollout_ref.rollout.n=2",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.actor.ppo_mini_batch_size=4",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=8",
        "actor_rollout_ref.actor.optim.lr=1e-3",
        f"reward.custom_reward_function.path={REPO / 'deltal' / 'rewards' / '__init__.py'}",
        "reward.custom_reward_function.name=compute_score",
        "trainer.logger=[console,file]",
        "trainer.project_name=e2e",
        "trainer.experiment_name=cpu",
        f"trainer.total_training_steps={steps}",
        "trainer.total_epochs=100",
        "trainer.save_freq=2",
        "trainer.test_freq=-1",
        f"trainer.default_local_dir={tmp_path / 'checkpoints'}",
        f"+ray_kwargs.ray_init._temp_dir={ray_tmp}",
        *extra,
    ]
    try:
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    finally:
        subprocess.run(["rm", "-rf", ray_tmp], check=False)
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-6000:])


@pytest.mark.slow
def test_delta_l_trains_checkpoints_and_resumes_on_cpu(tmp_path):
    model = build_tiny_assets(tmp_path / "model", seed=0)
    data = tmp_path / "data"
    subprocess.run(
        [sys.executable, "-m", "deltal.data.countdown", "--variant", "easy", "--out", str(data)]
        + ["--train-size", "64", "--test-size", "16", "--seed", "0"],
        check=True,
        capture_output=True,
    )

    first_log = tmp_path / "first.jsonl"
    _train(tmp_path, model, data, first_log, steps=2, extra=["trainer.val_before_train=true"])
    first = _records(first_log)
    assert any(key.startswith("val-core/countdown_easy/") for key in first[0]), "validation before training"
    for step in (1, 2):
        metrics = first[step]
        assert math.isfinite(metrics["actor/pg_loss"]) and math.isfinite(metrics["actor/grad_norm"])
        assert metrics["deltal/alpha"] == 1.0
        assert metrics["deltal/adv_weight/mean"] == pytest.approx(1.0, abs=1e-5)
        # ΔL weights L^-1 / mean(L^-1): uniform only when every response has the same length.
        lengths_vary = metrics["deltal/response_length/std"] > 0
        assert (metrics["deltal/adv_weight/std"] > 0) == lengths_vary
        assert metrics["deltal/adv_weight/min"] <= 1.0 <= metrics["deltal/adv_weight/max"]
        # The variance telemetry reaches the logs: ΔL at α = 1 is the minimum-variance aggregation by definition.
        assert metrics["deltal/variance/cv_ratio_to_optimal"] == 1.0
        assert metrics["deltal/variance/cv_ratio/dr_grpo_norm"] >= 1.0
    checkpoint = tmp_path / "checkpoints"
    assert (checkpoint / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert any((checkpoint / "global_step_2").rglob("*.pt"))

    resumed_log = tmp_path / "resumed.jsonl"
    _train(tmp_path, model, data, resumed_log, steps=3, extra=["trainer.val_before_train=false"])
    resumed = _records(resumed_log)
    trained_steps = sorted(step for step, metrics in resumed.items() if "actor/pg_loss" in metrics)
    assert trained_steps == [3], f"resume must continue at step 3, trained {trained_steps}"
    assert math.isfinite(resumed[3]["actor/pg_loss"])
