"""The quickstart takes its old log-probs from the rollout instead of a second forward pass of the actor.

Property: ``train_scripts/quickstart-cpu.sh`` launches ``deltal.train`` with verl's bypass mode on and the rollout's
log-probs kept (its resolved config, printed by ``DRY_RUN=1``), and in the pinned verl that mode copies the rollout's
log-probs into ``old_log_probs`` without asking the actor (verl/trainer/ppo/v1/trainer_base.py,
``PPOTrainer._compute_old_log_prob``), while verl's default still asks it. Why that is sound on CPU, the rollout and
the actor giving the same log-probs, is checked on the suite's shared training run (tests/e2e).
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from recording_python import RECORD_VARIABLE, recorded_train_command, write_recording_python
from verl.trainer.ppo.v1 import trainer_base

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "train_scripts" / "quickstart-cpu.sh"


def _quickstart_train_argv(tmp_path: Path) -> list[str]:
    """Run the quickstart with a stand-in python that records every command; return the deltal.train one."""
    python = write_recording_python(tmp_path / "python")
    record = tmp_path / "commands.jsonl"
    env = {**os.environ, "PYTHON": str(python), RECORD_VARIABLE: str(record), "CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(["bash", str(QUICKSTART)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return recorded_train_command(record)


@pytest.mark.slow
def test_quickstart_reuses_the_rollouts_log_probs(tmp_path):
    argv = _quickstart_train_argv(tmp_path)
    env = {**os.environ, "DRY_RUN": "1", "VERL_PLATFORM": "cpu", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    cfg = yaml.safe_load(result.stdout)
    correction = cfg["algorithm"]["rollout_correction"]
    assert correction["bypass_mode"] is True
    # No importance weights or rejection: the loss stays deltal's method's own PPO loss with old = rollout.
    assert (correction["rollout_is"], correction["rollout_rs"], correction["loss_type"]) == (None, None, "ppo_clip")
    assert cfg["actor_rollout_ref"]["rollout"]["calculate_log_probs"] is True
    assert cfg["actor_rollout_ref"]["actor"]["policy_loss"]["loss_mode"] == "vanilla"


class _FakeTransferQueue:
    """Holds one batch's fields; records what the trainer writes back."""

    def __init__(self, fields: dict[str, torch.Tensor]):
        self.fields = fields
        self.written: list[dict[str, torch.Tensor]] = []

    def kv_batch_get(self, keys, partition_id, select_fields):
        return {name: self.fields[name] for name in select_fields}

    def kv_batch_put(self, keys, partition_id, fields):
        self.written.append(dict(fields))


class _ActorAsked(Exception):
    pass


def _trainer(bypass_mode: bool) -> SimpleNamespace:
    def compute_log_prob(batch):
        raise _ActorAsked

    correction = {"bypass_mode": bypass_mode, "rollout_is": None, "rollout_rs": None}
    config = OmegaConf.create(
        {"algorithm": {"rollout_correction": correction}, "actor_rollout_ref": {"rollout": {"temperature": 1.0}}}
    )
    return SimpleNamespace(config=config, actor_rollout_wg=SimpleNamespace(compute_log_prob=compute_log_prob))


def test_verl_bypass_mode_copies_the_rollouts_log_probs_without_the_actor(monkeypatch):
    rollout_log_probs = torch.tensor([[-0.5, -1.25], [-2.0, -0.125]])
    queue = _FakeTransferQueue({"rollout_log_probs": rollout_log_probs})
    monkeypatch.setattr(trainer_base, "tq", queue)
    batch = SimpleNamespace(keys=["a", "b"], partition_id="train", extra_info={})
    returned = trainer_base.PPOTrainer._compute_old_log_prob(_trainer(bypass_mode=True), batch, metrics={})
    assert returned is batch
    (written,) = queue.written
    assert list(written) == ["old_log_probs"]
    assert torch.equal(written["old_log_probs"], rollout_log_probs)


def test_verl_default_recomputes_the_old_log_probs_with_the_actor(monkeypatch):
    monkeypatch.setattr(trainer_base, "tq", _FakeTransferQueue({}))
    batch = SimpleNamespace(keys=["a"], partition_id="train", extra_info={})
    with pytest.raises(_ActorAsked):
        trainer_base.PPOTrainer._compute_old_log_prob(_trainer(bypass_mode=False), batch, metrics={})
