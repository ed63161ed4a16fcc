"""The ``deltal_hf`` rollout server: a Ray actor sampling from a transformers causal LM, batch by batch.

``HFTokenServer`` holds the model. Concurrent ``generate`` requests from verl's agent loop are collected for a few
milliseconds and sampled as one batch (``deltal.sampling``), which is what makes CPU rollouts affordable; each
answer is verl's ``TokenOutput``, with per-token log-probs when asked. ``deltal.cpu.rollout`` launches one server
per replica. Torch threads per server: env ``DELTAL_CPU_THREADS`` (default 1; more threads than free cores is far
slower).

At import time this module loads the standard library only; torch, transformers and verl are imported by the
methods that use them. Ray builds an actor handle's method table from the actor's class, so every process that
receives a handle to the server imports this module. One of them is the request router (``deltal.cpu.router``),
which otherwise needs nothing heavy: with those imports at the top it spent about 3 CPU seconds per launch on
them (docs/cpu-step-profile.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deltal.cpu.threads import cpu_threads

if TYPE_CHECKING:
    import torch
    from verl.workers.rollout.replica import TokenOutput

    from deltal.sampling import SampledResponse, SamplingSettings

logger = logging.getLogger(__name__)

# The rollout's name in verl's registries (actor_rollout_ref.rollout.name) and the prefix of its servers' Ray actor
# names: deltal.cpu.backend registers it, deltal.cpu.rollout launches and finds the servers by it.
ROLLOUT_NAME = "deltal_hf"

# The server samples a batch once no new request arrived for BATCH_QUIET_S (the agent loop sends a step's
# requests in a burst), or after BATCH_MAX_WAIT_S at the latest.
BATCH_QUIET_S = 0.03
BATCH_MAX_WAIT_S = 0.5


@dataclass
class _PendingRequest:
    prompt_ids: list[int]
    max_tokens: int
    settings: SamplingSettings
    ignore_eos: bool
    want_log_probs: bool
    future: asyncio.Future = field(repr=False)


class HFTokenServer:
    """Token-in/token-out generation server over a transformers causal LM (wrapped with ``ray.remote``)."""

    def __init__(self, config: Any, model_config: Any, replica_rank: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, GenerationConfig

        torch.set_num_threads(cpu_threads())
        self.config = config
        self.replica_rank = replica_rank
        model_path = getattr(model_config, "local_path", None) or model_config.path
        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=torch.float32, attn_implementation="sdpa"
        ).eval()
        generation_config = GenerationConfig.from_model_config(self.model.config)
        if os.path.exists(os.path.join(model_path, "generation_config.json")):
            generation_config = GenerationConfig.from_pretrained(model_path)
        self.eos_token_ids = _as_id_set(generation_config.eos_token_id) | _as_id_set(self.model.config.eos_token_id)
        pad = generation_config.pad_token_id
        self.pad_token_id = int(pad if pad is not None else min(self.eos_token_ids, default=0))
        self.generator = torch.Generator().manual_seed(int(getattr(config, "seed", 0) or 0) + replica_rank)
        self.global_steps: int | None = None
        self._pending: list[_PendingRequest] = []
        self._batch_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        logger.info("deltal_hf server %d: %s, eos=%s", replica_rank, model_path, sorted(self.eos_token_ids))

    def _token_budget(self, prompt_len: int, sampling_params: dict[str, Any]) -> int:
        """Tokens this request may generate: the caller's max_tokens, else verl's response/prompt lengths."""
        limit = sampling_params.pop("max_tokens", None) or sampling_params.pop("max_new_tokens", None)
        if limit is None:
            limit = min(
                self.config.response_length, self.config.prompt_length + self.config.response_length - prompt_len
            )
        room = self.model.config.max_position_embeddings - prompt_len
        if room < 1:
            raise ValueError(
                f"Prompt of {prompt_len} tokens leaves no room within max_position_embeddings="
                f"{self.model.config.max_position_embeddings}; shorten data.max_prompt_length."
            )
        return max(1, min(int(limit), room))

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: Any = None,
        video_data: Any = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Sample one response for ``prompt_ids`` (batched with concurrent requests)."""
        from verl.workers.rollout.replica import TokenOutput

        from deltal.sampling import SamplingSettings

        if image_data is not None or video_data is not None:
            raise NotImplementedError("The deltal_hf CPU rollout serves text-only models; drop image/video inputs.")
        params = dict(sampling_params)
        top_k = params.get("top_k", -1)
        settings = SamplingSettings(
            temperature=float(params.get("temperature", 1.0)),
            top_k=int(top_k if top_k is not None else -1),
            top_p=float(params.get("top_p", 1.0)),
        )
        request = _PendingRequest(
            prompt_ids=[int(t) for t in prompt_ids],
            max_tokens=self._token_budget(len(prompt_ids), params),
            settings=settings,
            ignore_eos=bool(params.get("ignore_eos", False)),
            want_log_probs=bool(params.get("logprobs", False)),
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending.append(request)
        if self._batch_task is None or self._batch_task.done():
            self._batch_task = asyncio.create_task(self._run_batches())
        response: SampledResponse = await request.future
        return TokenOutput(
            token_ids=response.token_ids,
            log_probs=response.log_probs if request.want_log_probs else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps},
        )

    async def generate_many(self, requests: list[dict[str, Any]]) -> list[Any]:
        """``generate`` for each request (its keyword arguments), sent in one Ray call; a failed request's exception
        takes its place in the list. deltal's CPU agent loop sends concurrent requests this way
        (``deltal.cpu.agent_loop``): one Ray task instead of one per response."""
        return list(await asyncio.gather(*(self.generate(**request) for request in requests), return_exceptions=True))

    async def _run_batches(self) -> None:
        """Drain the pending requests in batches that share sampling settings; runs until none are left."""
        from deltal.sampling import generate_batch

        while self._pending:
            waited = 0.0
            while waited < BATCH_MAX_WAIT_S:
                seen = len(self._pending)
                await asyncio.sleep(BATCH_QUIET_S)
                waited += BATCH_QUIET_S
                if len(self._pending) == seen:
                    break
            batch, self._pending = self._pending, []
            groups: dict[tuple, list[_PendingRequest]] = {}
            for request in batch:
                groups.setdefault((request.settings, request.ignore_eos), []).append(request)
            for (settings, ignore_eos), requests in groups.items():
                try:
                    async with self._lock:
                        responses = await asyncio.to_thread(
                            generate_batch,
                            self.model,
                            [r.prompt_ids for r in requests],
                            [r.max_tokens for r in requests],
                            settings,
                            self.eos_token_ids,
                            self.pad_token_id,
                            self.generator,
                            ignore_eos,
                        )
                except Exception as exc:  # hand the failure to every waiting caller instead of hanging them
                    for request in requests:
                        if not request.future.done():
                            request.future.set_exception(exc)
                    continue
                for request, response in zip(requests, responses, strict=True):
                    if not request.future.done():
                        request.future.set_result(response)

    async def load_weights(self, named_tensors: dict[str, torch.Tensor]) -> int:
        """Copy the actor's tensors into the served model; return how many were loaded."""
        import torch

        async with self._lock:
            state = self.model.state_dict()
            unknown = sorted(set(named_tensors) - set(state))
            if unknown:
                raise KeyError(f"deltal_hf server got weights the model does not have: {unknown[:5]}")
            with torch.no_grad():
                for name, tensor in named_tensors.items():
                    state[name].copy_(tensor)
            return len(named_tensors)

    async def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # verl's replica/manager hooks. CPU memory is not released between phases, so they have nothing to do.
    async def wake_up(self, tags: list[str] | None = None) -> None:
        return None

    async def sleep(self) -> None:
        return None

    async def clear_kv_cache(self) -> None:
        return None

    async def release_kv_cache(self) -> None:
        return None

    async def resume_kv_cache(self) -> None:
        return None

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        # Requests finish within one batch; there is never a partial rollout to abort.
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self) -> None:
        return None

    async def start_profile(self, **kwargs: Any) -> None:
        return None

    async def stop_profile(self) -> None:
        return None


def _as_id_set(value: Any) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value}
