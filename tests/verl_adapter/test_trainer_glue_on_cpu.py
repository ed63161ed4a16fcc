"""deltal's trainer glue: ``deltal_sync`` selects deltal's subclass, yet verl's trainer runs in its literal
``sync`` mode (verl branches on that string), and the estimator's metrics reach the step's metrics dict."""

import torch
from omegaconf import OmegaConf
from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls

from deltal.verl_adapter import estimator
from deltal.verl_adapter.trainer import DeltaLSyncTrainer, DeltaLTaskRunner


def test_deltal_sync_selects_the_subclass_and_the_run_says_sync(monkeypatch):
    assert get_trainer_cls("deltal_sync") is DeltaLSyncTrainer
    seen = {}

    def fake_init(self, config):
        seen["mode"] = config.trainer.v1.trainer_mode

    monkeypatch.setattr(PPOTrainerSync, "__init__", fake_init)
    config = OmegaConf.create({"trainer": {"v1": {"trainer_mode": "deltal_sync", "sync": {}}}})
    OmegaConf.set_struct(config, True)
    DeltaLSyncTrainer(config)
    assert seen["mode"] == "sync"


def test_estimator_metrics_are_merged_after_verls_advantage_step(monkeypatch):
    def fake_compute_advantage(self, batch, metrics):
        metrics["verl/own"] = 1.0
        estimator._pending_step_stats.update(
            lengths=torch.tensor([2.0, 4.0]), weights=None, max_len=4, alpha=None, filtered=False
        )
        return batch

    monkeypatch.setattr(PPOTrainerSync, "_compute_advantage", fake_compute_advantage)
    trainer = object.__new__(DeltaLSyncTrainer)
    metrics = {}
    assert trainer._compute_advantage("batch", metrics) == "batch"
    assert metrics["verl/own"] == 1.0
    assert metrics["deltal/response_length/mean"] == 3.0
    assert metrics["deltal/truncated_fraction"] == 0.5
    assert metrics["deltal/adv_weight/mean"] == 1.0


def test_task_runner_is_a_ray_actor_class_built_on_verls_task_runner():
    from verl.trainer.main_ppo import TaskRunnerV1

    assert issubclass(DeltaLTaskRunner.__ray_actor_class__, TaskRunnerV1.__ray_actor_class__)
