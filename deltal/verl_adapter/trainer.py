"""deltal's hooks into verl's v1 trainer: a sync-trainer subclass that logs the estimator's metrics.

verl's estimator API returns only (advantages, returns), so the per-step ΔL statistics are kept by
``deltal.verl_adapter.estimator`` and merged into the step's metrics here, right after verl computes the
advantage (same process: the TaskRunner). The subclass is registered through verl's public
``register_trainer`` under the name ``deltal_sync``; the config resolver selects it in place of ``sync``, and the
trainer sets the mode back to ``sync`` before verl reads it, so the run behaves exactly as verl's sync trainer.

Importing this module imports verl's whole v1 trainer, so only deltal's TaskRunner imports it, never the plugin.
"""

from __future__ import annotations

import ray
from omegaconf import open_dict
from verl.trainer.main_ppo import TaskRunnerV1
from verl.trainer.ppo.v1 import PPOTrainerSync
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer

from deltal.verl_adapter.config import DELTAL_SYNC_TRAINER
from deltal.verl_adapter.estimator import pop_step_metrics
from deltal.verl_adapter.worker_fields import check_choice, for_workers


class DeltaLSyncTrainer(PPOTrainerSync):
    """verl's synchronous PPO trainer, plus deltal's per-step metrics (``deltal/*``) and, with
    ``trainer.worker_fields=read``, an actor worker that fetches only the fields it reads."""

    def __init__(self, config):
        # The name "deltal_sync" only selects this class in verl's registry. verl's trainer, replay buffer and
        # rollout-skip logic branch on the literal mode "sync" (and read trainer.v1.sync), so the run must say "sync".
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"
        self._narrow_worker_fields = check_choice(config.trainer.get("worker_fields", "all")) == "read"
        super().__init__(config)

    def _for_actor(self, batch):
        return for_workers(batch) if self._narrow_worker_fields else batch

    def _compute_old_log_prob(self, batch, metrics: dict):
        return super()._compute_old_log_prob(self._for_actor(batch), metrics=metrics)

    def _compute_ref_log_prob(self, batch, metrics: dict):
        return super()._compute_ref_log_prob(self._for_actor(batch), metrics=metrics)

    def _update_actor(self, batch, metrics: dict):
        return super()._update_actor(self._for_actor(batch), metrics=metrics)

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics=metrics)
        metrics.update(pop_step_metrics())
        return batch


if TRAINER_REGISTRY.get(DELTAL_SYNC_TRAINER) is not DeltaLSyncTrainer:
    register_trainer(DELTAL_SYNC_TRAINER)(DeltaLSyncTrainer)


class _DeltaLTaskRunner(TaskRunnerV1.__ray_actor_class__):
    """verl's TaskRunnerV1; running inside it imports this module, which registers ``deltal_sync`` there."""


# verl's run_ppo(config, task_runner_class) takes the Ray actor class, the seam verl offers recipes.
DeltaLTaskRunner = ray.remote(_DeltaLTaskRunner)
