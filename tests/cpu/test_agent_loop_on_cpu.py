"""deltal's CPU agent-loop worker puts exactly what verl's ``AgentLoopWorkerTQ`` puts into TransferQueue.

Properties: ``backend=cpu`` selects ``CPUAgentLoopManager`` through verl's ``agent_loop_manager_class`` seam (and
``null`` gives verl's back); on the same prompts and the same sampled tokens, the trajectories, rewards, tags and
prompt fields it writes to TransferQueue equal verl's, field by field, while it builds one agent loop instead of one
per trajectory, scores in its own process without touching the prompt's ``extra_info``, and asks the load balancer
once instead of twice per request (and every time when there are several servers). The one-put coalescing also holds
for the worker class as Ray ships it to an actor, where verl's methods run with globals of their own.
"""

import asyncio
import inspect
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import ray
import torch
import verl.trainer.ppo.v1.agent_loop_tq as verl_agent_loop_tq
from omegaconf import OmegaConf
from ray import cloudpickle
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ
from verl.utils import tensordict_utils as tu
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.utils.tokenizer.chat_template import apply_chat_template
from verl.utils.tokenizer.tokenizer import normalize_token_ids
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.rollout.replica import TokenOutput

from deltal.cpu import agent_loop as cpu_agent_loop
from deltal.cpu.agent_loop import CPUAgentLoopWorker, SingleServerClient
from deltal.data.countdown import build as build_countdown
from deltal.train import compose_config
from deltal.train.preflight.config_checks import check_reward_workers

N_PROMPTS, N_RESPONSES = 3, 4


class _Remote:
    """A Ray-actor-method stand-in: ``.remote(...)`` returns an awaitable, and counts its calls."""

    def __init__(self, function):
        self.function = function
        self.calls = 0

    def remote(self, *args, **kwargs):
        self.calls += 1
        result = self.function(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return result
        future = asyncio.get_running_loop().create_future()
        future.set_result(result)
        return future


class _Server:
    """A rollout server whose answer depends only on the prompt: the same tokens whichever worker asks.

    ``fail_prompt``: a prompt (token ids) whose requests raise, as a broken request would.
    """

    def __init__(self, eos_token_id: int, fail_prompt=None):
        self.eos_token_id = eos_token_id
        self.fail_prompt = fail_prompt
        self.generate = _Remote(self._generate)

    async def _generate(self, request_id, prompt_ids, sampling_params, **kwargs):
        await asyncio.sleep(0)
        if self.fail_prompt is not None and list(prompt_ids) == self.fail_prompt:
            raise RuntimeError("request failed")
        tokens = [int(t) for t in prompt_ids[-5:][::-1]] + [self.eos_token_id]
        log_probs = [-0.1 * (i + 1) for i in range(len(tokens))]
        return TokenOutput(token_ids=tokens, log_probs=log_probs, extra_fields={"global_steps": 1})


class _BatchingServer(_Server):
    """The fake server with deltal's ``generate_many`` (several requests in one call)."""

    def __init__(self, eos_token_id: int, fail_prompt=None):
        super().__init__(eos_token_id, fail_prompt)
        self.generate_many = _Remote(self._generate_many)
        self.requests = 0

    async def _generate_many(self, requests):
        self.requests += len(requests)
        return list(await asyncio.gather(*(self._generate(**r) for r in requests), return_exceptions=True))


class _LoadBalancer:
    def __init__(self, servers: dict):
        self.servers = servers
        self.acquire_server = _Remote(lambda request_id: next(iter(self.servers.items())))
        self.release_server = _Remote(lambda server_id: None)
        self.require_acquire_fields = _Remote(lambda: [])
        self.require_release_fields = _Remote(lambda: [])
        self.get_all_servers = _Remote(lambda: list(self.servers))


class _RemoteRewardWorker:
    """verl's ``RewardLoopWorker`` behind a pickle round trip, as a Ray actor handle would give it its input."""

    def __init__(self, config):
        from verl.experimental.reward_loop import RewardLoopWorker

        self.config = config
        self.worker = None

        async def score(data):
            if self.worker is None:
                self.worker = RewardLoopWorker(self.config, None)
            return await self.worker.compute_score(pickle.loads(pickle.dumps(data)))

        self.compute_score = _Remote(score)


class _TransferQueue:
    """The functions of ``transfer_queue`` the agent loop calls, recording every put."""

    def __init__(self):
        self.puts = []
        self.statuses = []

    def init(self, *args, **kwargs):
        return None

    async def async_kv_put(self, key, partition_id, tag):
        self.statuses.append((key, partition_id, tag["status"]))

    async def async_kv_batch_put(self, keys, fields, tags, partition_id):
        self.puts.append((list(keys), fields, tags, partition_id))


@pytest.fixture(scope="module")
def config(tiny_assets, tmp_path_factory):
    data = tmp_path_factory.mktemp("countdown")
    build_countdown(data, train_size=N_PROMPTS, test_size=1, variant="easy")
    cfg = compose_config(
        [
            "backend=cpu",
            "method=delta_l",
            f"actor_rollout_ref.model.path={tiny_assets}",
            f"data.train_files={data / 'train.parquet'}",
            f"data.val_files={data / 'test.parquet'}",
            "data.max_prompt_length=32",
            "data.max_response_length=24",
            f"actor_rollout_ref.rollout.n={N_RESPONSES}",
            "reward.custom_reward_function.path=pkg://deltal.rewards",
            "reward.custom_reward_function.name=compute_score",
        ]
    )
    OmegaConf.resolve(cfg)
    return cfg


def _prompt_batch(config, worker):
    """A training batch as verl's trainer submits it: dataset rows, uids, global step."""
    dataset = RLHFDataset(data_files=config.data.train_files, tokenizer=worker.tokenizer, config=config.data)
    batch_dict = collate_fn([dataset[i] for i in range(N_PROMPTS)])
    batch_dict["uid"] = np.array([f"uid{i}" for i in range(N_PROMPTS)], dtype=object)
    batch = tu.get_tensordict(batch_dict)
    tu.assign_non_tensor_data(batch, "global_steps", 1)
    return batch


def _roll_out(worker_class, config, monkeypatch, servers=1, fail_first_prompt=False, server_class=None):
    """Run one batch through a worker class (no Ray); return what it wrote to TransferQueue and the fakes."""
    tq = _TransferQueue()
    # The globals verl's agent-loop methods run with: its module's, or their own in a class as Ray ships it. Both
    # names are restored after the test (deltal's worker reroutes them in its process).
    namespace = inspect.unwrap(worker_class._agent_loop_postprocess).__globals__
    monkeypatch.setitem(namespace, "tq", tq)
    monkeypatch.setitem(namespace, "list_of_dict_to_tensordict", namespace["list_of_dict_to_tensordict"])

    async def run():
        reward = _RemoteRewardWorker(config)
        balancer = _LoadBalancer({})
        client = LLMServerClient(config, load_balancer_handle=balancer)
        if issubclass(worker_class, CPUAgentLoopWorker):
            client = SingleServerClient(config, load_balancer_handle=balancer)
        worker = worker_class(config, client, None, [reward])
        batch = _prompt_batch(config, worker)
        first_prompt = None
        if fail_first_prompt:
            tokens = apply_chat_template(
                worker.tokenizer, list(batch["raw_prompt"][0]), tokenize=True, add_generation_prompt=True
            )
            first_prompt = normalize_token_ids(tokens)
        server = (server_class or _Server)(worker.tokenizer.eos_token_id, fail_prompt=first_prompt)
        balancer.servers.update({f"server{i}": server for i in range(servers)})
        prompts_before = pickle.dumps([dict(row) for row in batch["extra_info"]])
        await worker.generate_sequences(batch)
        await asyncio.gather(*list(worker.background_tasks))
        prompts_after = pickle.dumps([dict(row) for row in batch["extra_info"]])
        return SimpleNamespace(
            tq=tq, balancer=balancer, reward=reward, server=server, extra_info_kept=prompts_before == prompts_after
        )

    return asyncio.run(run())


def _rows(tq):
    """key → that trajectory's fields, timing metrics left out (they are wall-clock times)."""
    rows = {}
    for keys, fields, tags, partition in tq.puts:
        for i, key in enumerate(keys):
            row = {name: fields[name][i] for name in fields.keys()}
            row["metrics"] = {k: v for k, v in dict(row["metrics"]).items() if k == "num_preempted"}
            rows[key] = (row, tags[i], partition)
    return rows


def _assert_same(ours, verls):
    assert ours.keys() == verls.keys()
    for key in verls:
        (our_row, our_tag, our_partition), (verl_row, verl_tag, verl_partition) = ours[key], verls[key]
        assert our_tag == verl_tag and our_partition == verl_partition
        assert our_row.keys() == verl_row.keys()
        for name, value in verl_row.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(our_row[name], value), (key, name)
            else:
                assert pickle.dumps(our_row[name]) == pickle.dumps(value), (key, name)


def test_cpu_backend_selects_deltals_manager_without_a_reward_worker_and_null_gives_verls_back():
    cfg = compose_config(["backend=cpu", "method=delta_l"])
    assert cfg.actor_rollout_ref.rollout.agent.agent_loop_manager_class == "deltal.cpu.agent_loop.CPUAgentLoopManager"
    assert issubclass(cpu_agent_loop.CPUAgentLoopManager, AgentLoopManagerTQ)
    assert issubclass(CPUAgentLoopWorker, AgentLoopWorkerTQ.__ray_actor_class__)
    # No reward worker: this manager's workers score in their own process, which preflight accepts.
    assert cfg.reward.num_workers == 0 and check_reward_workers(cfg) == []
    verls_manager = "actor_rollout_ref.rollout.agent.agent_loop_manager_class=null"
    cfg = compose_config(["backend=cpu", "method=delta_l", verls_manager])
    assert cfg.actor_rollout_ref.rollout.agent.agent_loop_manager_class is None
    # verl's own manager needs its reward worker back, and preflight says so.
    assert "set reward.num_workers=1" in check_reward_workers(cfg)[0]
    assert (
        check_reward_workers(compose_config(["backend=cpu", "method=delta_l", verls_manager, "reward.num_workers=1"]))
        == []
    )


def test_trajectories_rewards_and_tags_equal_verls(config, monkeypatch):
    verls = _roll_out(AgentLoopWorkerTQ.__ray_actor_class__, config, monkeypatch)
    ours = _roll_out(CPUAgentLoopWorker, config, monkeypatch)
    trajectories = N_PROMPTS * N_RESPONSES
    assert len(_rows(verls.tq)) == len(_rows(ours.tq)) == trajectories
    _assert_same(_rows(ours.tq), _rows(verls.tq))
    assert sorted(ours.tq.statuses) == sorted(verls.tq.statuses)
    assert {status for _, _, status in ours.tq.statuses} == {"running", "finished"}
    # Real rewards were computed (CountDown's scorer tags its data source), not left empty.
    for row, _, _ in _rows(ours.tq).values():
        assert row["extra_fields"]["reward_extra_info"]["data_source"] == "countdown_easy"
        assert row["rm_scores"].shape == row["responses"].shape
    # verl's path scored remotely; ours in process, without writing into the prompts' extra_info.
    assert verls.reward.compute_score.calls == trajectories and ours.reward.compute_score.calls == 0
    assert ours.extra_info_kept
    # verl put each trajectory on its own; ours all of them at once.
    assert len(verls.tq.puts) == trajectories and len(ours.tq.puts) == 1
    # verl asked the balancer twice per request; ours once in all.
    assert verls.balancer.acquire_server.calls == verls.balancer.release_server.calls == trajectories
    assert ours.balancer.acquire_server.calls == ours.balancer.release_server.calls == 1
    assert ours.server.generate.calls == verls.server.generate.calls == trajectories


def test_one_agent_loop_serves_every_trajectory(config, monkeypatch):
    built = []
    original = cpu_agent_loop.hydra.utils.instantiate

    def counting_instantiate(*args, **kwargs):
        if "server_manager" in kwargs:  # an agent loop, not one of verl's config dataclasses
            built.append(kwargs["config"]["_target_"])
        return original(*args, **kwargs)

    monkeypatch.setattr(cpu_agent_loop.hydra.utils, "instantiate", counting_instantiate)
    _roll_out(CPUAgentLoopWorker, config, monkeypatch)
    assert built == [cpu_agent_loop._SINGLE_TURN_TARGET]


def test_several_servers_go_through_the_balancer_every_time(config, monkeypatch):
    ours = _roll_out(CPUAgentLoopWorker, config, monkeypatch, servers=2)
    trajectories = N_PROMPTS * N_RESPONSES
    assert ours.balancer.acquire_server.calls == ours.balancer.release_server.calls == trajectories
    assert len(_rows(ours.tq)) == trajectories


def test_a_failed_trajectory_neither_holds_back_nor_changes_the_others(config, monkeypatch):
    verls = _roll_out(AgentLoopWorkerTQ.__ray_actor_class__, config, monkeypatch, fail_first_prompt=True)
    ours = _roll_out(CPUAgentLoopWorker, config, monkeypatch, fail_first_prompt=True)
    assert len(_rows(ours.tq)) == (N_PROMPTS - 1) * N_RESPONSES
    _assert_same(_rows(ours.tq), _rows(verls.tq))
    assert sorted(ours.tq.statuses) == sorted(verls.tq.statuses)
    assert [status for _, _, status in ours.tq.statuses].count("failure") == 1


@pytest.mark.parametrize("fail_first_prompt", [False, True])
def test_requests_to_deltals_server_travel_together_with_the_same_answers(config, monkeypatch, fail_first_prompt):
    verls = _roll_out(AgentLoopWorkerTQ.__ray_actor_class__, config, monkeypatch, fail_first_prompt=fail_first_prompt)
    ours = _roll_out(
        CPUAgentLoopWorker, config, monkeypatch, fail_first_prompt=fail_first_prompt, server_class=_BatchingServer
    )
    _assert_same(_rows(ours.tq), _rows(verls.tq))
    assert sorted(ours.tq.statuses) == sorted(verls.tq.statuses)
    assert ours.server.generate.calls == 0 and ours.server.requests == N_PROMPTS * N_RESPONSES
    assert 1 <= ours.server.generate_many.calls < N_PROMPTS * N_RESPONSES


def test_puts_coalesce_in_the_worker_class_as_ray_ships_it(config, monkeypatch):
    # Ray wraps every method of an actor class and pickles the class; verl's methods, hidden behind its ray.remote
    # wrapper, travel by value and run with globals of their own. The coalescing must reach those, not the module's.
    actor_class = ray.remote(CPUAgentLoopWorker).__ray_metadata__.modified_class
    shipped = cloudpickle.loads(cloudpickle.dumps(actor_class))
    assert inspect.unwrap(shipped._agent_loop_postprocess).__globals__ is not vars(verl_agent_loop_tq)
    verls = _roll_out(AgentLoopWorkerTQ.__ray_actor_class__, config, monkeypatch)
    ours = _roll_out(shipped, config, monkeypatch)
    _assert_same(_rows(ours.tq), _rows(verls.tq))
    assert sorted(ours.tq.statuses) == sorted(verls.tq.statuses)
    assert len(ours.tq.puts) == 1
