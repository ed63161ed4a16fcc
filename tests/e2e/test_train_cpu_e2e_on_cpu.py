"""End to end on CPU: ``python -m deltal.train backend=cpu method=delta_l`` runs verl's whole v1 pipeline.

Property: on a CPU-only host, with a tiny local model and no downloads, deltal's trainer validates, takes two
training steps in which deltal's ΔL advantage weights are applied (logged ``deltal/*`` metrics: α = 1, weights of
mean 1 that vary when response lengths vary, and the variance telemetry) with a finite loss and rollout log-probs
that match the actor's, writes a checkpoint, and a second launch resumes from it and continues at step 3. Ray's temp
dir, caches, logs and checkpoints all live in temporary folders.

The first launch is the suite's shared delta_l run (``compare_delta_l_run`` in tests/conftest.py: trained by
``deltal.experiments.compare``, whose own test checks the experiment tool); the resume is launched here with that
run's command line.
"""

import dataclasses
import json
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from deltal.cli import settings_from
from deltal.experiments.compare import CompareSettings, build_parser, prepare, run_name, train_command

RUN = run_name(CompareSettings.task, "delta_l", 0)


def _records(path: Path) -> dict[int, dict]:
    merged: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        merged.setdefault(record["step"], {}).update(record["data"])
    return merged


def _resume(experiment, steps: int, log: Path, workdir: Path) -> None:
    """Launch the shared run's own ``deltal.train`` command again for ``steps`` steps, resuming its checkpoint."""
    settings = settings_from(build_parser().parse_args(experiment.args("--methods", "delta_l")), CompareSettings)
    assets = prepare(settings, experiment.cache)  # cached by the first launch: nothing is rebuilt
    ray_tmp = tempfile.mkdtemp(prefix="dl-ray-", dir="/tmp")  # Ray socket paths must stay short
    command = train_command(dataclasses.replace(settings, steps=steps), assets, "delta_l", 0, workdir, ray_tmp)
    command += ["trainer.resume_mode=auto", "trainer.val_before_train=false", "trainer.test_freq=-1"]
    env = {**os.environ, "VERL_PLATFORM": "cpu", "RAY_AUTH_MODE": "disabled", "VERL_FILE_LOGGER_PATH": str(log)}
    try:
        result = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-6000:])


@pytest.mark.slow
def test_delta_l_trains_checkpoints_and_resumes_on_cpu(compare_delta_l_run, tmp_path):
    experiment = compare_delta_l_run
    first = _records(experiment.out / "runs" / RUN / f"{RUN}.jsonl")
    assert any(key.startswith("val-core/countdown_trace/") for key in first[0]), "validation before training"
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
        # verl recomputes the old log-probs here and logs the largest probability gap to the rollout's on any token:
        # the CPU rollout agrees with the actor, which is why the quickstart reuses the rollout's log-probs instead.
        assert metrics["training/rollout_probs_diff_max"] < 1e-4
    checkpoint = experiment.checkpoints / RUN
    assert (checkpoint / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    assert any((checkpoint / "global_step_2").rglob("*.pt"))

    resumed_log = tmp_path / "resumed.jsonl"
    _resume(experiment, steps=3, log=resumed_log, workdir=tmp_path)
    resumed = _records(resumed_log)
    trained_steps = sorted(step for step, metrics in resumed.items() if "actor/pg_loss" in metrics)
    assert trained_steps == [3], f"resume must continue at step 3, trained {trained_steps}"
    assert math.isfinite(resumed[3]["actor/pg_loss"])
