"""On a CUDA run, preflight checks this machine: torch sees CUDA and enough GPUs (naming the driver it found), the
rollout engine is installed, and flash-attn's kernels import with this torch when the actor uses them.

flash-attn's states are real packages on a temporary path (tests/conftest.py): none, a Python package without its
kernels (a build that had no nvcc), kernels that fail to load with this torch (a wheel for another torch), and
working kernels. The one
check (deltal.attention_kernels) answers for setup.sh, the launch scripts and preflight; its command-line form is run
as they run it. GPU facts are simulated (a stand-in torch module)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from deltal.attention_kernels import flash_attn_problem
from deltal.train.preflight import environment_checks

REPO = Path(__file__).resolve().parents[2]

EXPECTED_PROBLEM = {
    "missing": "flash-attn is not installed",
    "no_kernels": "installed without its CUDA kernels (no flash_attn_2_cuda module",
    "broken": "kernels do not import with torch",
    "working": None,
}


@pytest.fixture
def flash_attn_state(tmp_path, monkeypatch, write_flash_attn_state):
    """Put one flash-attn state (tests/conftest.py) first on sys.path, forgetting any earlier import of it."""

    def use(state: str) -> Path:
        root = write_flash_attn_state(tmp_path / state, state)
        monkeypatch.syspath_prepend(str(root))
        for name in ("flash_attn", "flash_attn_2_cuda"):
            monkeypatch.delitem(sys.modules, name, raising=False)
        return root

    return use


@pytest.mark.parametrize("state", list(EXPECTED_PROBLEM))
def test_flash_attn_check_tells_each_state_apart(flash_attn_state, state):
    flash_attn_state(state)
    problem = flash_attn_problem()
    if EXPECTED_PROBLEM[state] is None:
        assert problem is None
    else:
        assert EXPECTED_PROBLEM[state] in problem
    if state == "broken":
        assert "undefined symbol" in problem and "another torch, CUDA or Python" in problem


@pytest.mark.parametrize("state", ["broken", "working"])
def test_flash_attn_command_exits_0_only_when_the_kernels_import(tmp_path, write_flash_attn_state, state):
    # As setup.sh and common.sh run it: a separate interpreter, the answer in the exit status and one stderr line.
    root = write_flash_attn_state(tmp_path / state, state)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(REPO)])}
    result = subprocess.run(
        [sys.executable, "-m", "deltal.attention_kernels"], env=env, capture_output=True, text=True, timeout=120
    )
    if state == "working":
        assert (result.returncode, result.stderr) == (0, "")
    else:
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert "flash-attn's CUDA kernels do not import" in line and "undefined symbol" in line


def fake_torch(available: bool, count: int = 0, cuda: str | None = "13.0") -> SimpleNamespace:
    return SimpleNamespace(
        __version__="2.11.0",
        version=SimpleNamespace(cuda=cuda),
        cuda=SimpleNamespace(is_available=lambda: available, device_count=lambda: count),
    )


def gpu_config(n_gpus: int = 8, nnodes: int = 1, **model) -> OmegaConf:
    return OmegaConf.create(
        {
            "trainer": {"device": "cuda", "n_gpus_per_node": n_gpus, "nnodes": nnodes},
            "actor_rollout_ref": {"model": model, "rollout": {"name": "vllm"}, "actor": {"strategy": "fsdp2"}},
        }
    )


def test_no_cuda_names_the_build_the_driver_and_where_to_get_the_right_build():
    (problem,) = environment_checks.check_cuda(
        gpu_config(), fake_torch(available=False), driver_version=lambda: "535.183.01"
    )
    assert "CUDA is not available" in problem and "CUDA 13.0 build" in problem
    assert "this node's NVIDIA driver is 535.183.01" in problem
    assert "nvidia-smi" in problem and "bash setup.sh --dry-run" in problem and "quickstart-cpu.sh" in problem
    (problem,) = environment_checks.check_cuda(gpu_config(), fake_torch(available=False, cuda=None), lambda: None)
    assert "CPU-only build" in problem and "no NVIDIA driver is loaded on this node" in problem


def test_driver_version_is_read_from_the_kernel_modules_own_file(tmp_path):
    version_file = tmp_path / "version"
    version_file.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.183.01  Sun May 12 19:39:15 UTC 2024\n"
        "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
    )
    assert environment_checks.nvidia_driver_version(version_file) == "535.183.01"
    version_file.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build\n")
    assert environment_checks.nvidia_driver_version(version_file) == "580.82.07"
    assert environment_checks.nvidia_driver_version(tmp_path / "absent") is None


def test_fewer_gpus_than_n_gpus_names_the_count_to_set(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    (problem,) = environment_checks.check_cuda(gpu_config(n_gpus=8), fake_torch(available=True, count=4))
    assert "trainer.n_gpus_per_node=8 but this node sees 4 GPU(s) (CUDA_VISIBLE_DEVICES=0,1,2,3)" in problem
    assert "set N_GPUS=4" in problem
    assert environment_checks.check_cuda(gpu_config(n_gpus=4), fake_torch(available=True, count=4)) == []
    # Several nodes: the driver's own count says nothing about the others (the Ray probe counts nodes).
    assert environment_checks.check_cuda(gpu_config(n_gpus=8, nnodes=2), fake_torch(available=True, count=0)) == []


def test_cpu_runs_skip_the_machine_checks(countdown_config):
    assert environment_checks.check_cuda(countdown_config, fake_torch(available=False)) == []
    assert environment_checks.check_engines(countdown_config, lambda name: None, lambda: "not installed") == []


@pytest.mark.parametrize("state", ["missing", "no_kernels", "broken"])
def test_unusable_flash_attn_stops_a_flash_attention_run_with_the_reason_and_the_sdpa_fix(flash_attn_state, state):
    flash_attn_state(state)
    (problem,) = environment_checks.check_engines(gpu_config(), find_spec=lambda name: object())
    assert EXPECTED_PROBLEM[state] in problem and "the model load would fail" in problem
    assert "ATTN_IMPL=sdpa" in problem and "use_remove_padding=False" in problem and "bash setup.sh" in problem
    sdpa = gpu_config(override_config={"attn_implementation": "sdpa"}, use_remove_padding=False)
    assert environment_checks.check_engines(sdpa, find_spec=lambda name: object()) == []


def test_working_flash_attn_lets_a_flash_attention_run_through(flash_attn_state):
    flash_attn_state("working")
    assert environment_checks.check_engines(gpu_config(), find_spec=lambda name: object()) == []


def test_uninstalled_rollout_engine_points_to_the_supported_vllm_path():
    config = gpu_config(override_config={"attn_implementation": "sdpa"})
    config.actor_rollout_ref.rollout.name = "sglang"
    (problem,) = environment_checks.check_engines(config, lambda name: None if name == "sglang" else object())
    assert "rollout.name=sglang but sglang is not installed" in problem and "rollout.name=vllm" in problem
