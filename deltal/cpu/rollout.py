"""A transformers-based rollout for verl 0.9.1 on CPU, registered as ``actor_rollout_ref.rollout.name=deltal_hf``.

verl's agent loop talks to rollout *servers* (vLLM, SGLang, TRT-LLM) through a ``RolloutReplica`` and a
token-in/token-out ``generate`` call; none of them runs on a CPU-only host. The same three pieces, on top of a plain
transformers model:

* ``HFTokenServer`` (``deltal.cpu.token_server``): a Ray actor holding the model; concurrent requests are sampled
  as one batch.
* ``HFReplica``: launches one server per replica (hybrid mode: colocated with the FSDP workers) and exposes it
  to verl's ``LLMServerManager`` and request router.
* ``HFServerAdapter``: the rollout object inside each FSDP worker. verl calls ``update_weights`` with the
  actor's full tensors after every update; the adapter forwards them to its replica's server.

Sleep / wake-up / KV-cache hooks are no-ops: CPU memory is not swapped between trainer and rollout.

Registered by ``deltal.cpu.backend.register_cpu_backend()``; nothing to run directly.
"""

from __future__ import annotations

import os
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutMode, RolloutReplica

from deltal.cpu.token_server import ROLLOUT_NAME, HFTokenServer


def server_actor_name(replica_rank: int) -> str:
    """Ray actor name of a replica's server; the worker-side adapter finds its server by this name."""
    return f"{ROLLOUT_NAME}_server_{replica_rank}"


class HFReplica(RolloutReplica):
    """One ``HFTokenServer`` per replica, colocated with the replica's FSDP workers (hybrid mode only)."""

    async def launch_servers(self) -> None:
        if self.rollout_mode != RolloutMode.HYBRID:
            raise NotImplementedError(
                f"The deltal_hf CPU rollout supports hybrid mode only (got {self.rollout_mode}); keep "
                "actor_rollout_ref.hybrid_engine=true and trainer.v1.trainer_mode=sync."
            )
        name = server_actor_name(self.replica_rank)
        server = (
            ray.remote(HFTokenServer)
            .options(name=name, max_concurrency=self.max_concurrency, num_cpus=0)
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        # Fail here, with the real error, if the model cannot be loaded.
        await server.set_global_steps.remote(0)
        self.servers = [server]
        self._server_handle = server
        self._server_address = name


class HFServerAdapter(BaseRollout):
    """Rollout object inside each FSDP worker: forwards the actor's weights to the replica's server."""

    def __init__(self, config: Any, model_config: Any, device_mesh: Any, replica_rank: int = -1, **kwargs: Any):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", "0"))
        replica_world_size = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // replica_world_size if replica_rank == -1 else replica_rank
        # One sender per replica; the other ranks still walk the weight generator (it may run collectives).
        self.is_sender = rank % replica_world_size == 0
        self._server: Any = None

    def _server_handle(self) -> Any:
        if self._server is None:
            self._server = ray.get_actor(server_actor_name(self.replica_rank))
        return self._server

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(self, weights: Any, wire_format: str = "named_tensors", **kwargs: Any) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(
                f"deltal_hf takes full named tensors, not {wire_format!r}; "
                "keep actor_rollout_ref.rollout.checkpoint_engine.backend=naive."
            )
        tensors: dict[str, torch.Tensor] = {}
        if hasattr(weights, "__aiter__"):
            async for name, tensor in weights:
                tensors[name] = _to_cpu_copy(tensor)
        else:
            for name, tensor in weights:
                tensors[name] = _to_cpu_copy(tensor)
        if not self.is_sender:
            return
        server = self._server_handle()
        await server.load_weights.remote(tensors)
        if kwargs.get("global_steps") is not None:
            await server.set_global_steps.remote(kwargs["global_steps"])


def _to_cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    if hasattr(tensor, "full_tensor"):  # a DTensor shard: gather the full parameter first
        tensor = tensor.full_tensor()
    return tensor.detach().to("cpu", copy=True)
