"""deltal's CPU replay buffer is verl's sync ``ReplayBuffer`` polling TransferQueue every 0.1 s instead of 2 s.

Properties: ``backend=cpu`` selects it through verl's custom-sampler seam, and verl's own trainer code builds it
from the composed config; while a batch is still rolling out it sleeps the short interval between polls, and it
returns exactly the batch verl's own buffer returns for the same TransferQueue contents; DAPO group filtering and
a non-positive interval are refused with a message that names the fix; refilling failed groups is passed on.
"""

from types import SimpleNamespace

import pytest
import verl.trainer.ppo.v1.replay_buffer as verl_replay_buffer
from omegaconf import OmegaConf
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer
from verl.trainer.ppo.v1.trainer_base import PPOTrainer

from deltal.cpu.replay_buffer import CPUReplayBuffer
from deltal.train import compose_config


def _built_by_verl(overrides: list[str]) -> ReplayBuffer:
    """The replay buffer verl's trainer builds (``PPOTrainer._build_replay_buffer``) from deltal's config."""
    cfg = compose_config(["backend=cpu", "method=delta_l", *overrides])
    OmegaConf.resolve(cfg)  # as verl's TaskRunner does before building the trainer
    trainer = SimpleNamespace(config=cfg, trainer_mode="sync", _add_prompts_to_generate=lambda count: None)
    trainer._resolve_filter_groups_metric = lambda: PPOTrainer._resolve_filter_groups_metric(trainer)
    return PPOTrainer._build_replay_buffer(trainer)


class _FakeTransferQueue:
    """TransferQueue's metadata: two prompt groups still running for ``running_polls`` polls, then finished."""

    def __init__(self, running_polls: int) -> None:
        self.running_polls = running_polls
        self.polls = 0

    def kv_list(self) -> dict:
        self.polls += 1
        done = self.polls > self.running_polls
        status = "finished" if done else "running"
        train = {uid: {"is_prompt": True, "status": status, "global_steps": 1} for uid in ("a", "b")}
        if done:
            for uid in ("a", "b"):
                for session in (0, 1):
                    train[f"{uid}_{session}_0"] = {"status": "success", "response_len": 3 + session}
        return {"train": train}

    def kv_clear(self, partition_id: str, keys: list[str]) -> None:
        return None


class _Clock:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def time(self) -> float:
        return 0.0


def _sample(buffer: ReplayBuffer, monkeypatch, running_polls: int) -> tuple[list, list, list[float]]:
    clock = _Clock()
    monkeypatch.setattr(verl_replay_buffer, "tq", _FakeTransferQueue(running_polls))
    monkeypatch.setattr(verl_replay_buffer, "time", clock)
    batch, _ = buffer.sample(global_steps=1, partition_id="train", batch_size=2)
    return batch.keys, batch.tags, clock.sleeps


def test_cpu_backend_selects_the_short_poll_buffer_through_verls_seam():
    buffer = _built_by_verl([])
    assert type(buffer) is CPUReplayBuffer
    assert buffer.poll_interval == pytest.approx(0.1)
    assert buffer.filter_groups_metric is None and buffer.sync_refill_failed_groups is False


def test_path_null_gives_verls_own_buffer_back():
    buffer = _built_by_verl(["trainer.v1.sampler.custom_sampler.path=null"])
    assert type(buffer) is ReplayBuffer
    assert buffer.poll_interval == pytest.approx(2.0)


def test_sample_polls_at_the_short_interval_and_returns_verls_batch(monkeypatch):
    ours = _sample(_built_by_verl([]), monkeypatch, running_polls=3)
    verls = _sample(_built_by_verl(["trainer.v1.sampler.custom_sampler.path=null"]), monkeypatch, running_polls=3)
    assert ours[2] == [pytest.approx(0.1)] * 3
    assert verls[2] == [pytest.approx(2.0)] * 3
    assert sorted(ours[0]) == sorted(verls[0]) == ["a_0_0", "a_1_0", "b_0_0", "b_1_0"]
    assert sorted(map(str, ours[1])) == sorted(map(str, verls[1]))


def test_poll_interval_is_configurable():
    buffer = _built_by_verl(["trainer.v1.sampler.sampler_kwargs.poll_interval_s=0.02"])
    assert buffer.poll_interval == pytest.approx(0.02)


@pytest.mark.parametrize("interval", ["0", "-1"])
def test_non_positive_interval_is_refused(interval):
    with pytest.raises(ValueError, match="poll_interval_s.*must be > 0"):
        _built_by_verl([f"trainer.v1.sampler.sampler_kwargs.poll_interval_s={interval}"])


def test_dapo_group_filtering_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="custom_sampler.path=null"):
        _built_by_verl(["algorithm.filter_groups.enable=true", "algorithm.filter_groups.metric=acc"])


def test_refilling_failed_groups_is_passed_on():
    buffer = _built_by_verl(["trainer.v1.sampler.sync_refill_failed_groups=true"])
    assert buffer.sync_refill_failed_groups is True and buffer.gen_batch_size == 1
