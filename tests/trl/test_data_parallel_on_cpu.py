"""ΔL over processes: one optimizer step on 2 data-parallel CPU processes (DDP over gloo, launched by torchrun) has
the gradient of the same batch in one process, for the batch and the group scope.

TRL computes advantages over the generation batch of all processes; ``DeltaLGRPOTrainer`` gathers every process's
lengths too, so the ΔL weights, and with ``dr_grpo``'s constant denominator the gradient, do not depend on how the
batch is spread. The completions come from a scripted ``rollout_func`` (``conftest.scripted_rollout``): sampling
would draw different completions in each layout. Each prompt's 4 completions sit in one process and their lengths
differ, so a weight normalised per process would differ from the batch one (checked on the logged weights).
Tolerance as in ``test_gradient_accumulation_on_cpu.py``: rtol 1e-6 on every entry, the model in float64.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_parallel_worker import one_step

WORKER = Path(__file__).with_name("data_parallel_worker.py")
REPO = Path(__file__).resolve().parents[2]


SCOPES = ("batch", "group")


@pytest.fixture(scope="module")
def two_process_steps(tiny_model_dir, tmp_path_factory) -> dict[str, dict]:
    """{scope: saved gradient and log record} of one step on 2 processes, 1 accumulation step each."""
    out = tmp_path_factory.mktemp("two_processes")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(WORKER), str(tiny_model_dir), str(out), "1", *SCOPES]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-5000:])
    return {scope: torch.load(out / f"{scope}.pt") for scope in SCOPES}


@pytest.mark.slow
@pytest.mark.parametrize("scope", SCOPES)
def test_two_processes_give_the_gradient_of_one(tiny_model_dir, tmp_path, two_process_steps, scope):
    reference, record = one_step(tiny_model_dir, tmp_path, accumulation=2, scope=scope, processes=1)
    assert record["deltal/adv_weight/max"] > record["deltal/adv_weight/min"] + 0.05
    assert sum(gradient.norm() for gradient in reference) > 1e-4
    saved = two_process_steps[scope]
    assert saved["record"]["deltal/adv_weight/min"] == pytest.approx(record["deltal/adv_weight/min"], rel=1e-6)
    for gradient, expected in zip(saved["gradients"], reference, strict=True):
        torch.testing.assert_close(gradient, expected, rtol=1e-6, atol=1e-12)
