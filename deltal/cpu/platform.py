"""A CPU platform for verl 0.9.1's platform registry (``verl.plugin.platform``), selected by ``VERL_PLATFORM=cpu``.

verl ships platforms for NVIDIA, Huawei and AMD only; with none of them present it falls back to ``nvidia`` and
then fails on NCCL, ``torch.cuda`` memory calls and ``.to(0)`` (device 0 means CUDA to torch). ``PlatformCPU``
answers every platform question for a CPU-only host:

* device ``"cpu"`` and ``current_device() == "cpu"``, so ``tensor.to(get_device_id())`` stays on the CPU;
* collectives over ``gloo``;
* Ray resource ``"GPU"``: the CPU backend asks Ray for *fake* GPUs (``ray_init.num_gpus``), because verl's
  resource pools always request the platform's accelerator resource. One fake GPU = one FSDP rank;
* ``device_module``: ``CPUDeviceModule``, ``torch.cpu`` plus the ``torch.cuda``-style calls verl makes
  (memory statistics, cache flushes, RNG state, device name) as harmless CPU equivalents.

Registered by ``deltal.cpu.backend.register_cpu_backend()``; nothing to run directly.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import torch

PLATFORM_NAME = "cpu"


class CPUDeviceModule:
    """``torch.cuda``-shaped facade over ``torch.cpu`` for the calls verl makes on ``get_torch_device()``.

    Memory statistics report 0 (CPU memory is not a managed pool), cache/IPC calls do nothing, and the RNG
    state is torch's CPU generator, which verl's checkpoints already save under the key ``"cpu"``.
    """

    def __getattr__(self, name: str) -> Any:
        # Everything torch.cpu has (Stream, stream, current_stream, Event, synchronize, ...) is used as is.
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        # verl's FLOPs counter looks this name up in its table of accelerators; "CPU" gives "unknown peak".
        return "CPU"

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_allocated(device: Any = None) -> int:
        return 0

    @staticmethod
    def max_memory_reserved(device: Any = None) -> int:
        return 0

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        """(free, total) bytes of host memory, the CPU analogue of ``torch.cuda.mem_get_info``."""
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    @staticmethod
    def manual_seed_all(seed: int) -> None:
        torch.manual_seed(seed)


def build_platform_class() -> type:
    """Define ``PlatformCPU`` on verl's ``PlatformBase`` (imported here so the module itself stays verl-free)."""
    from verl.plugin.platform import PlatformBase

    device_module = CPUDeviceModule()

    class PlatformCPU(PlatformBase):
        """verl platform for CPU-only hosts; see the module docstring for each choice."""

        @property
        def device_name(self) -> str:
            return "cpu"

        @property
        def vendor_name(self) -> str:
            return "cpu"

        @property
        def device_module(self) -> CPUDeviceModule:
            return device_module

        def is_available(self) -> bool:
            return True

        def is_platform_available(self, use_smi_check: bool = False) -> bool:
            # Never auto-detected: a GPU host must not silently pick the CPU. Only VERL_PLATFORM=cpu selects it.
            return False

        def current_device(self) -> str:
            return "cpu"

        def device_count(self) -> int:
            return 1

        def set_device(self, device_index: int) -> None:
            return None

        def synchronize(self, device_index: int | None = None) -> None:
            return None

        def manual_seed(self, seed: int) -> None:
            torch.manual_seed(seed)

        def manual_seed_all(self, seed: int) -> None:
            torch.manual_seed(seed)

        def set_allocator_settings(self, settings: str) -> None:
            return None

        def empty_cache(self) -> None:
            return None

        def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
            return None, None

        def communication_backend_name(self) -> str:
            return "gloo"

        def visible_devices_envvar(self) -> str:
            # Ray sets CUDA_VISIBLE_DEVICES for fake GPUs; torch on CPU ignores it.
            return "CUDA_VISIBLE_DEVICES"

        @contextmanager
        def nvtx_range(self, msg: str):
            yield

        def profiler_start(self) -> None:
            return None

        def profiler_stop(self) -> None:
            return None

        def ray_resource_name(self) -> str:
            return "GPU"

        def ray_noset_envvars(self) -> list[str]:
            return []

        def is_ipc_supported(self) -> bool:
            return False

        def cudart(self) -> None:
            return None

    return PlatformCPU
