"""verl's TransferQueue agent loop with less per-trajectory overhead, for the CPU backend.

Selected through verl's seam for a custom agent-loop manager, ``actor_rollout_ref.rollout.agent.
agent_loop_manager_class`` (set by ``deltal/config/backend/cpu.yaml``; ``null`` gives verl's own back). The manager
and worker are verl 0.9.1's ``AgentLoopManagerTQ`` / ``AgentLoopWorkerTQ``. Per trajectory, verl's worker pays
for machinery that a GPU run never notices; at the CPU quickstart's 256 trajectories of ~12 tokens it was about
3.4 of 7 CPU seconds per step, in three processes (docs/cpu-step-profile.md). The worker here removes five of
those costs and writes into TransferQueue exactly what verl's writes (``tests/cpu/test_agent_loop_on_cpu.py``
runs both on the same prompts and compares every stored field, tag and status):

1. **One single-turn agent loop per worker** instead of a hydra ``instantiate`` per trajectory (about 1 ms of
   OmegaConf merging each). verl's ``SingleTurnAgentLoop`` keeps no state between ``run`` calls (everything it
   sets in ``__init__`` is read-only config, tokenizer and token builder), so one instance, built by the same
   ``instantiate`` call with the same arguments, serves every trajectory. Other agent loops (tools, custom ones)
   keep verl's per-trajectory instance.
2. **Rule-based rewards scored in the worker's own process.** verl hands each trajectory to a ``RewardLoopWorker``
   actor (a pickled ``DataProto`` and a Ray task each way). Here the same ``RewardLoopWorker`` class runs inside the
   agent-loop process on a copy of the same ``DataProto``, as Ray's pickling would give it (verl's reward manager
   writes into the ``extra_info`` it receives). With a reward model enabled, verl's remote workers are used.
3. **No load-balancer round trip when there is one rollout server.** verl's client asks the
   ``GlobalRequestLoadBalancer`` actor for a server before each request and tells it when the request is done
   (two Ray calls per trajectory). With a single server every answer is that server: the client asks once, then
   sends requests straight to it. The balancer's in-flight counts then stay at zero; verl reads them only in its
   fully-async trainer, which the CPU backend does not run (its rollout is hybrid and sync only). When that server
   is deltal's own (``HFTokenServer``), requests arriving within 5 ms of each other travel in one
   ``generate_many`` Ray call instead of one call each; the server answers each as its ``generate`` would.
4. **One TransferQueue put for the trajectories that finish together** instead of one each
   (``_CoalescingTransferQueue``). This is the one wrap without a seam: in the worker's process only, the globals
   that verl's agent-loop methods run with get a stand-in for their ``transfer_queue`` and
   ``list_of_dict_to_tensordict`` names, so that each trajectory's put waits until no running trajectory is still
   generating or scoring and then all go in one ``async_kv_batch_put``, in arrival order, each with its own key,
   fields and tags. (In a Ray actor those globals are a copy of verl's module's, see
   ``_coalesce_transfer_queue_puts``; an earlier version replaced the module's names, which the actor never reads.)

The private verl names used (``AgentLoopWorkerTQ``'s class behind Ray's wrapper, ``_agent_loop_registry``,
``LLMServerClient._load_balancer`` and its ``_acquire_server`` / ``_release_server`` hooks, the two global names
of ``verl.trainer.ppo.v1.agent_loop_tq``) are those of the pinned verl version; the manager and the worker refuse
to start on another version.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
from dataclasses import dataclass
from typing import Any

import hydra
import ray
from verl import DataProto
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, ToolListWrap, _agent_loop_registry
from verl.experimental.agent_loop.single_turn_agent_loop import SingleTurnAgentLoop
from verl.experimental.reward_loop import RewardLoopWorker
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ
from verl.utils.rollout_trace import rollout_trace_attr
from verl.utils.tensordict_utils import list_of_dict_to_tensordict
from verl.workers.rollout.llm_server import LLMServerClient

from deltal.cpu.backend import _check_verl_version

logger = logging.getLogger(__name__)

# Requests to deltal's rollout server that arrive within this many seconds go in one Ray call.
GENERATE_WINDOW_S = 0.005
# The registry entry verl's @register("single_turn_agent") writes for the stateless single-turn loop.
_SINGLE_TURN_TARGET = f"{SingleTurnAgentLoop.__module__}.{SingleTurnAgentLoop.__qualname__}"


class SingleServerClient(LLMServerClient):
    """verl's ``LLMServerClient``; with exactly one server behind the balancer, it routes to it without asking."""

    def __init__(self, config: Any, load_balancer_handle: Any = None, **kwargs: Any) -> None:
        super().__init__(config, load_balancer_handle=load_balancer_handle, **kwargs)
        # (server_id, handle) of the only server, False when there are several, None until first asked.
        self._only_server: tuple[str, Any] | bool | None = None
        self._lookup: asyncio.Future | None = None

    async def _find_only_server(self, request_id: str, extra: dict[str, Any]) -> tuple[str, Any] | bool:
        servers = await self._load_balancer.get_all_servers.remote()
        if len(servers) != 1:
            return False
        # One acquire through the balancer hands out the handle; released at once, the balancer is as before.
        server_id, handle = await super()._acquire_server(request_id, **extra)
        super()._release_server(server_id, request_id=request_id)
        logger.info("agent loop: one rollout server (%s); requests go to it directly", server_id)
        if hasattr(handle, "generate_many"):  # deltal's own server: requests travel together
            return server_id, _CoalescedGenerate(handle)
        return server_id, handle

    async def _acquire_server(self, request_id: str, **extra: Any) -> tuple[str, Any]:
        if self._only_server is None:
            # The first step's requests all arrive together: one lookup serves them all.
            if self._lookup is None:
                self._lookup = asyncio.ensure_future(self._find_only_server(request_id, extra))
            self._only_server = await self._lookup
        if self._only_server:
            return self._only_server
        return await super()._acquire_server(request_id, **extra)

    def _release_server(self, server_id: str, request_id: str | None = None) -> None:
        if self._only_server:
            return
        super()._release_server(server_id, request_id=request_id)


class _CoalescedGenerate:
    """The one server's handle as verl's client calls it (``generate.remote(**request)``), sending the requests
    that arrive within ``GENERATE_WINDOW_S`` of each other's first in one ``generate_many`` call.

    The window is well under the server's own batching window (``deltal.cpu.token_server.BATCH_QUIET_S``), so the
    server still sees one burst and samples it as one batch, as before; each request gets its own answer.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self._pending: list[tuple[dict[str, Any], asyncio.Future]] = []
        self.generate = _RemoteCall(self._generate)

    async def _generate(self, **request: Any) -> Any:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._pending.append((request, answer))
        if len(self._pending) == 1:
            loop.call_later(GENERATE_WINDOW_S, self._send_pending)
        return await answer

    def _send_pending(self) -> None:
        pending, self._pending = self._pending, []
        asyncio.get_running_loop().create_task(self._send(pending))

    async def _send(self, pending: list[tuple[dict[str, Any], asyncio.Future]]) -> None:
        try:
            results = await self._handle.generate_many.remote([request for request, _ in pending])
        except Exception as exc:  # the call itself failed: every request in it fails with that error
            results = [exc] * len(pending)
        for (_, answer), result in zip(pending, results, strict=True):
            if answer.done():  # its trajectory was cancelled meanwhile
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)


class _InProcessRewardHandle:
    """Stands in for a ``RewardLoopWorker`` actor handle: ``compute_score.remote(data)`` scores in this process."""

    def __init__(self, config: Any) -> None:
        self._config = config
        self._worker: RewardLoopWorker | None = None
        self.compute_score = _RemoteCall(self._score)

    async def _score(self, data: Any) -> dict:
        if self._worker is None:
            # Built inside the running event loop: the reward manager keeps the loop it finds at construction.
            self._worker = RewardLoopWorker(self._config, None)
        # verl's reward manager writes into the extra_info it is given; over Ray it would write into a copy. A copy
        # of each part, not of the DataProto (whose deepcopy goes through torch.save).
        copied = DataProto(
            batch=data.batch.clone(),
            non_tensor_batch=copy.deepcopy(data.non_tensor_batch),
            meta_info=copy.deepcopy(data.meta_info),
        )
        return await self._worker.compute_score(copied)


class _RemoteCall:
    def __init__(self, function: Any) -> None:
        self.remote = function


class _FieldRows:
    """What verl's per-trajectory ``list_of_dict_to_tensordict(fields)`` returns in a worker that coalesces puts."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows


@dataclass
class _PendingPut:
    keys: list[str]
    partition_id: str
    rows: list[dict[str, Any]]
    tags: list[dict[str, Any]] | None
    done: asyncio.Future


class _CoalescingTransferQueue:
    """``transfer_queue`` as verl's agent loop module sees it in this worker: one put for many trajectories.

    verl puts each finished trajectory into TransferQueue on its own (``async_kv_batch_put`` with one key: a
    metadata round trip, a storage round trip and a notification each). Here a put waits until every trajectory
    that is running has reached its put (none is still generating or scoring) and then all of them go in one
    ``async_kv_batch_put``, in the order they arrived, with their own keys, fields and tags. TransferQueue stores
    fields per sample, so the stored samples are the ones single puts store. A trajectory is only waited for while
    another one is still on its way: verl's sync trainer samples a step once all of them are in anyway.
    """

    def __init__(self, transfer_queue: Any) -> None:
        self._tq = transfer_queue
        self._running = 0
        self._waiting: list[_PendingPut] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tq, name)

    def trajectory_started(self) -> None:
        self._running += 1

    def trajectory_ended(self) -> None:
        self._running -= 1
        self._flush_when_all_wait()

    async def async_kv_batch_put(self, keys: list[str], partition_id: str, fields: Any = None, tags=None, **kwargs):
        if not isinstance(fields, _FieldRows) or kwargs or self._running == 0:
            if isinstance(fields, _FieldRows):
                fields = list_of_dict_to_tensordict(fields.rows)
            return await self._tq.async_kv_batch_put(keys=keys, partition_id=partition_id, fields=fields, tags=tags)
        put = _PendingPut(list(keys), partition_id, fields.rows, tags, asyncio.get_running_loop().create_future())
        self._waiting.append(put)
        self._flush_when_all_wait()
        return await put.done

    def _flush_when_all_wait(self) -> None:
        if self._waiting and len(self._waiting) >= self._running:
            waiting, self._waiting = self._waiting, []
            asyncio.get_running_loop().create_task(self._flush(waiting))

    async def _flush(self, puts: list[_PendingPut]) -> None:
        # One put per partition and field set (list_of_dict_to_tensordict needs the same keys in every row).
        groups: dict[tuple, list[_PendingPut]] = {}
        for put in puts:
            kinds = (put.partition_id, tuple(put.rows[0]), put.tags is None)
            groups.setdefault(kinds, []).append(put)
        for (partition_id, _, no_tags), group in groups.items():
            try:
                meta = await self._tq.async_kv_batch_put(
                    keys=[key for put in group for key in put.keys],
                    partition_id=partition_id,
                    fields=list_of_dict_to_tensordict([row for put in group for row in put.rows]),
                    tags=None if no_tags else [tag for put in group for tag in put.tags],
                )
            except Exception as exc:  # every trajectory of the group sees the failure, as with its own put
                for put in group:
                    put.done.set_exception(exc)
                continue
            for put in group:
                put.done.set_result(meta)


def _coalesce_transfer_queue_puts(worker_class: type) -> _CoalescingTransferQueue:
    """Route the puts of ``worker_class``'s agent-loop code in this process through one ``_CoalescingTransferQueue``.

    The names are replaced where the running ``_agent_loop_postprocess`` looks them up. In a test that is verl's
    module. In a Ray actor it is not: Ray wraps every method of an actor class, inherited ones included, and ships
    the class with cloudpickle; verl's ``AgentLoopWorkerTQ`` hides behind its ``ray.remote`` wrapper, so its methods
    travel by value and run with a globals dict of their own (shared by all of them), not the module's.
    """
    namespace = inspect.unwrap(worker_class._agent_loop_postprocess).__globals__
    if not isinstance(namespace["tq"], _CoalescingTransferQueue):
        namespace["tq"] = _CoalescingTransferQueue(namespace["tq"])
        namespace["list_of_dict_to_tensordict"] = _FieldRows
    return namespace["tq"]


class CPUAgentLoopWorker(AgentLoopWorkerTQ.__ray_actor_class__):
    """verl's ``AgentLoopWorkerTQ`` with one shared single-turn agent loop and in-process rule-based rewards."""

    def __init__(self, config: Any, llm_client: Any, teacher_client: Any = None, reward_loop_worker_handles=None):
        if reward_loop_worker_handles is not None and not config.reward.reward_model.enable:
            reward_loop_worker_handles = [_InProcessRewardHandle(config)]
        _check_verl_version()
        super().__init__(config, llm_client, teacher_client, reward_loop_worker_handles)
        self._shared_agent_loops: dict[str, Any] = {}
        self._puts = _coalesce_transfer_queue_puts(type(self))

    def _shared_agent_loop(self, agent_name: str) -> Any:
        """The worker's one instance of ``agent_name`` if it is verl's single-turn loop, else None."""
        if agent_name in self._shared_agent_loops:
            return self._shared_agent_loops[agent_name]
        agent_loop_config = _agent_loop_registry.get(agent_name)
        agent_loop = None
        if agent_loop_config is not None and agent_loop_config.get("_target_") == _SINGLE_TURN_TARGET:
            # The call verl's _run_agent_loop makes for every trajectory, made once.
            agent_loop = hydra.utils.instantiate(
                config=agent_loop_config,
                trainer_config=DictConfigWrap(config=self.config),
                server_manager=self.llm_client,
                tokenizer=self.tokenizer,
                processor=self.processor,
                hf_model_type=self.hf_model_type,
                dataset_cls=self.dataset_cls,
                data_config=DictConfigWrap(self.config.data),
                tools=ToolListWrap(self.tools),
            )
        self._shared_agent_loops[agent_name] = agent_loop
        return agent_loop

    async def _run_agent_loop(
        self, sampling_params: dict[str, Any], trajectory: dict[str, Any], *, agent_name: str, trace: bool = True, **kw
    ) -> Any:
        self._puts.trajectory_started()
        try:
            return await self._run_one(sampling_params, trajectory, agent_name=agent_name, trace=trace, **kw)
        finally:
            self._puts.trajectory_ended()

    async def _run_one(
        self, sampling_params: dict[str, Any], trajectory: dict[str, Any], *, agent_name: str, trace: bool, **kw
    ) -> Any:
        agent_loop = self._shared_agent_loop(agent_name)
        if agent_loop is None:
            return await super()._run_agent_loop(sampling_params, trajectory, agent_name=agent_name, trace=trace, **kw)
        with rollout_trace_attr(
            step=trajectory["step"],
            sample_index=trajectory["sample_index"],
            rollout_n=trajectory["rollout_n"],
            validate=trajectory["validate"],
            name="agent_loop",
            trace=trace,
        ):
            output = await agent_loop.run(sampling_params, **kw)
            return await self._agent_loop_postprocess(output, trajectory["validate"], **kw)


class CPUAgentLoopManager(AgentLoopManagerTQ):
    """verl's ``AgentLoopManagerTQ`` launching ``CPUAgentLoopWorker`` actors with a ``SingleServerClient``."""

    def __init__(self, config: Any, llm_client: Any, teacher_client: Any = None, reward_loop_worker_handles=None):
        _check_verl_version()
        if type(llm_client) is LLMServerClient:
            llm_client = SingleServerClient(config, load_balancer_handle=llm_client._load_balancer)
        super().__init__(config, llm_client, teacher_client, reward_loop_worker_handles)
        self.agent_loop_workers_class = ray.remote(CPUAgentLoopWorker)
