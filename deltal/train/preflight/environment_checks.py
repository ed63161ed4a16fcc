"""Preflight checks of this machine on a CUDA run: GPUs and driver, the rollout engine, and flash-attn's kernels.

CPU runs (``trainer.device=cpu``) skip them all. Which torch/vLLM build a driver runs is ``setup.sh``'s choice
(``bash setup.sh --dry-run`` prints it for the node it runs on; docs/gpu-setup.md explains it), so the messages point
there instead of restating driver numbers.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from deltal.attention_kernels import flash_attn_problem

logger = logging.getLogger(__name__)

ROLLOUT_PACKAGES = {"vllm": "vllm", "sglang": "sglang"}
# Where the loaded NVIDIA kernel module states its version (present whenever the driver is loaded).
NVIDIA_DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
SUPPORTED_STRATEGIES = ("fsdp", "fsdp2")


def on_cuda(config: DictConfig) -> bool:
    return str(config.trainer.get("device", "cuda")) == "cuda"


def actor_attention(config: DictConfig) -> str:
    """The attention implementation the FSDP actor loads the model with (verl's default: flash_attention_2)."""
    model = (config.get("actor_rollout_ref") or {}).get("model") or {}
    return str((model.get("override_config") or {}).get("attn_implementation", "flash_attention_2"))


def nvidia_driver_version(version_file: Path = NVIDIA_DRIVER_VERSION_FILE) -> str | None:
    """The loaded NVIDIA driver's version, or None when no driver is loaded (or the file says something else)."""
    try:
        text = version_file.read_text()
    except OSError:
        return None
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+\.\d+(?:\.\d+)?)", text)
    return match.group(1) if match else None


def check_cuda(
    config: DictConfig, torch_module=None, driver_version: Callable[[], str | None] = nvidia_driver_version
) -> list[str]:
    """On a CUDA run: torch sees CUDA and, on one node, at least ``trainer.n_gpus_per_node`` GPUs."""
    if not on_cuda(config):
        return []
    if torch_module is None:
        import torch as torch_module
    built_for = torch_module.version.cuda
    if not torch_module.cuda.is_available():
        build = f"a CUDA {built_for} build" if built_for else "a CPU-only build"
        driver = driver_version()
        found = f"this node's NVIDIA driver is {driver}" if driver else "no NVIDIA driver is loaded on this node"
        return [
            f"CUDA is not available: torch {torch_module.__version__} is {build} and sees no GPU, and {found}. Check "
            "that `nvidia-smi` lists the GPUs; `bash setup.sh --dry-run` on this node shows the torch/vLLM build its "
            "driver runs (a CUDA 13 build needs a CUDA 13 driver) and `bash setup.sh` installs it "
            "(docs/gpu-setup.md). Without GPUs, run the CPU quickstart: bash train_scripts/quickstart-cpu.sh."
        ]
    wanted = int(config.trainer.get("n_gpus_per_node") or 0)
    found = torch_module.cuda.device_count()
    if int(config.trainer.get("nnodes", 1)) <= 1 and found < wanted:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        return [
            f"trainer.n_gpus_per_node={wanted} but this node sees {found} GPU(s){shown}: set N_GPUS={found} "
            "(trainer.n_gpus_per_node), or free the GPUs."
        ]
    return []


def check_engines(
    config: DictConfig,
    find_spec: Callable = importlib.util.find_spec,
    attention_problem: Callable[[], str | None] = flash_attn_problem,
) -> list[str]:
    """On a CUDA run: the rollout engine is installed, and flash-attn's kernels import when the actor uses them."""
    if not on_cuda(config):
        return []
    problems = []
    if actor_attention(config) == "flash_attention_2":
        problem = attention_problem()
        if problem is not None:
            problems.append(
                f"the actor uses attn_implementation=flash_attention_2 (verl's default) but {problem}, so the model "
                "load would fail. Install a working flash-attn (bash setup.sh; docs/gpu-setup.md), or use SDPA: "
                "ATTN_IMPL=sdpa for the launch scripts (ATTN_IMPL=auto picks it by itself), i.e. "
                "++actor_rollout_ref.model.override_config.attn_implementation=sdpa "
                "actor_rollout_ref.model.use_remove_padding=False."
            )
    rollout = str(config.actor_rollout_ref.get("rollout", {}).get("name", ""))
    package = ROLLOUT_PACKAGES.get(rollout)
    if package and find_spec(package) is None:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout} but {package} is not installed in this environment. deltal "
            "supports vLLM rollouts with FSDP training (bash setup.sh installs them): set rollout.name=vllm."
        )
    strategy = str(config.actor_rollout_ref.get("actor", {}).get("strategy", "fsdp"))
    if strategy not in SUPPORTED_STRATEGIES:
        logger.warning(
            "actor strategy %s is not a path deltal tests: its launch scripts and set-up cover vLLM + FSDP2 only",
            strategy,
        )
    return problems
