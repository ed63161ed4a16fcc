"""Make verl 0.9.1 train on a CPU-only host: ``register_cpu_backend()``, called by ``deltal.verl_adapter.plugin`` when
``VERL_PLATFORM=cpu``.

Stock verl 0.9.1 has no CPU device path (see ``docs/verl-0.9.1-on-cpu.md`` §3). This function
fills each gap through verl's public seams, in every process that imports verl (driver, TaskRunner, workers):

1. platform: ``PlatformCPU`` into ``verl.plugin.platform.PlatformRegistry`` as ``cpu`` (selected by
   ``VERL_PLATFORM=cpu``, which verl reads itself);
2. training engine: verl registers its FSDP engine for ``cuda``/``npu`` only; ``VERL_ENGINE_DEVICE=cuda`` (verl's
   documented override, ``EngineRegistry.get_engine_cls``) selects that same engine. FSDP2 itself runs on CPU
   tensors with gloo;
3. rollout: ``deltal_hf`` (``deltal.cpu.rollout``) into ``_ROLLOUT_REGISTRY`` and ``RolloutReplicaRegistry``;
4. process group: a piece with no seam. ``verl.utils.distributed.initialize_global_process_group_ray``
   builds the backend string ``"cpu:gloo,<device>:<backend>"``, which on CPU is ``"cpu:gloo,cpu:gloo"`` and
   torch rejects as a duplicate. It is wrapped to pass plain ``"gloo"`` when the caller gave no backend; nothing
   else changes. Guarded by the pinned verl version: on another version this refuses to run;
5. per-token log-probs: verl's fallback for hosts without flash-attn calls ``logsumexp`` once per token row;
   ``deltal.cpu.log_probs`` puts in a bit-identical version that takes chunks of rows (no seam either; same guard).

The rest (fake Ray GPUs, TransferQueue storage units, sdpa attention, fsdp2, dtypes, Ray and TransferQueue
settings, the replay buffer's poll interval through verl's custom-sampler seam, ``deltal.cpu.replay_buffer``, and
the agent loop through verl's custom agent-loop-manager seam, ``deltal.cpu.agent_loop``) are config, in
``deltal/config/backend/cpu.yaml``; what each costs or buys is in docs/cpu-step-profile.md.
Idempotent: a second call does nothing.

Imports at call time: ``verl.plugin.platform`` and ``verl.utils.torch_functional`` (already loaded by
``verl/__init__``), ``verl.utils.distributed`` and ``verl.workers.rollout.{base,replica}`` for their registries (Ray
and verl's worker config, needed anyway by every process that trains). ``deltal.cpu.rollout`` itself is imported
lazily by verl when a rollout is built; the rollout's name comes from ``deltal.cpu.token_server``, which imports
only the standard library.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

from deltal import PINNED_VERL_VERSION
from deltal.cpu.log_probs import use_row_chunked_log_probs
from deltal.cpu.platform import PLATFORM_NAME, build_platform_class
from deltal.cpu.token_server import ROLLOUT_NAME

logger = logging.getLogger(__name__)

_REGISTERED = False


def _check_verl_version() -> None:
    import verl

    version = getattr(verl, "__version__", None)
    if version != PINNED_VERL_VERSION:
        raise RuntimeError(
            f"deltal's CPU backend wraps verl internals checked against verl=={PINNED_VERL_VERSION}, but verl "
            f"{version} is installed. Install the pinned version (bash setup.sh --cpu) or run on GPUs without "
            "VERL_PLATFORM=cpu."
        )


def _register_platform() -> None:
    from verl.plugin.platform import PlatformRegistry

    PlatformRegistry.register(PLATFORM_NAME)(build_platform_class())


def _use_gloo_process_groups() -> None:
    """Wrap verl's Ray process-group initialiser so that, with no backend given, it uses plain gloo."""
    import verl.utils.distributed as distributed

    original = distributed.initialize_global_process_group_ray
    if getattr(original, "_deltal_gloo", False):
        return

    @functools.wraps(original)
    def initialize_with_gloo(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    initialize_with_gloo._deltal_gloo = True
    distributed.initialize_global_process_group_ray = initialize_with_gloo
    # Modules that imported the function by name before this ran hold the original; rebind theirs too.
    for module_name in ("verl.workers.engine_workers",):
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, "initialize_global_process_group_ray"):
            module.initialize_global_process_group_ray = initialize_with_gloo


def _register_rollout() -> None:
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = "deltal.cpu.rollout.HFServerAdapter"

    def load_replica():
        from deltal.cpu.rollout import HFReplica

        return HFReplica

    RolloutReplicaRegistry.register(ROLLOUT_NAME, load_replica)


def register_cpu_backend() -> None:
    """Register deltal's CPU platform, rollout and gloo process groups with verl (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    _check_verl_version()
    _register_platform()
    # verl's own FSDP engine is registered for cuda/npu; this env override (read per lookup) selects it on CPU.
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")
    _use_gloo_process_groups()
    use_row_chunked_log_probs()
    _register_rollout()
    _REGISTERED = True
    logger.debug("deltal CPU backend registered (platform=%s, rollout=%s)", PLATFORM_NAME, ROLLOUT_NAME)
