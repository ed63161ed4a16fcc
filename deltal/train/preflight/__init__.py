"""Checks that stop a training run before Ray starts, each with a message that says what to do.

``python -m deltal.train`` calls :func:`run_preflight` on the resolved config of every real run (``DRY_RUN=1``
skips it). It reports every failure at once. The checks live in one module per concern:

- :mod:`.config_checks` - what the config points at: verl loaded deltal's plugin; the train and validation parquet
  files exist with the columns verl and deltal's reward read, and every ``data_source`` has a deltal reward; the
  LaTeX-equivalence server answers when any file holds math data; the custom reward file exists, and
  ``reward.num_workers=0`` only goes with deltal's CPU agent loop and no reward model; the model is a local folder
  with ``config.json`` (a hub id only warns);
- :mod:`.environment_checks` - this machine: on a CUDA run torch sees CUDA and this node has
  ``trainer.n_gpus_per_node`` GPUs (one-node runs), the rollout engine is installed, and flash-attn's kernels import
  with this torch when the actor asks for ``flash_attention_2`` (verl's default);
- :mod:`.node_checks` - the other nodes: a run on several nodes has a Ray cluster to join, and on every node of it
  deltal and verl import with the driver's versions (and flash-attn's kernels, when the actor uses them), probed
  by one tiny Ray task per node.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from deltal.train.preflight.config_checks import (
    check_data,
    check_model,
    check_registration,
    check_reward_workers,
    check_rewards,
)
from deltal.train.preflight.environment_checks import check_cuda, check_engines
from deltal.train.preflight.errors import PreflightError
from deltal.train.preflight.node_checks import check_ray_cluster, check_ray_nodes

__all__ = ["PreflightError", "run_preflight"]

logger = logging.getLogger(__name__)


def run_preflight(config: DictConfig) -> None:
    """Raise PreflightError listing every problem that would stop or spoil the run ``config`` describes."""
    problems = check_registration()
    data_problems, sources = check_data(config)
    problems += data_problems
    problems += check_rewards(config, sources)
    problems += check_reward_workers(config)
    problems += check_model(str(config.actor_rollout_ref.model.path))
    problems += check_cuda(config)
    problems += check_engines(config)
    cluster_problems = check_ray_cluster(config)
    # Probing the nodes takes a Ray connection: only worth it once everything local is in order.
    problems += cluster_problems or ([] if problems else check_ray_nodes(config))

    if problems:
        raise PreflightError(f"{len(problems)} problem(s):\n" + "\n".join(f"- {problem}" for problem in problems))
    logger.info("preflight passed: %d data source(s) %s", len(sources), sorted(sources))
