"""verl's sync replay buffer with a short poll interval, for the CPU backend (``trainer.v1.sampler.custom_sampler``).

verl 0.9.1's ``ReplayBuffer.sample`` checks TransferQueue for finished rollouts, and when too few are done it
sleeps ``poll_interval`` seconds before looking again. The trainer builds the buffer with the default of 2 s and
has no config key for it; on a GPU cluster a rollout takes minutes and 2 s is noise, but a CPU quickstart step
rolls out in about a second, so every ``gen`` phase (training and validation) was rounded up to the next 2 s
(docs/cpu-step-profile.md). verl's documented seam for a different sampler is
``trainer.v1.sampler.custom_sampler.{path,name}``; ``CPUReplayBuffer`` is verl's own class, unchanged but for the
interval, read from ``trainer.v1.sampler.sampler_kwargs.poll_interval_s``.

Through that seam verl passes a custom sampler only the basic arguments; the ones it computes for its own
sampler (DAPO group filtering, refilling failed groups) arrive here through ``sampler_kwargs`` (set by
``deltal/config/backend/cpu.yaml`` from the same config keys). Refilling failed groups is supported as verl does
it; DAPO group filtering (``algorithm.filter_groups``) is refused with a message, not silently dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 0.1


class CPUReplayBuffer(ReplayBuffer):
    """verl's sync ``ReplayBuffer`` polling TransferQueue every ``sampler_kwargs.poll_interval_s`` seconds."""

    def __init__(
        self,
        trainer_mode: str,
        trainer_config: Any,
        max_off_policy_threshold: int | None,
        max_off_policy_strategy: str,
        sampler_kwargs: Any,
        refill_fn: Any = None,
    ) -> None:
        settings = dict(sampler_kwargs or {})
        if trainer_mode != "sync":
            raise ValueError(
                f"deltal's CPUReplayBuffer serves trainer.v1.trainer_mode=sync only (got {trainer_mode!r}); set "
                "trainer.v1.sampler.custom_sampler.path=null to use verl's own sampler."
            )
        if settings.get("filter_groups_enable", False):
            raise ValueError(
                "algorithm.filter_groups (DAPO group filtering) is not supported by deltal's CPU replay buffer; set "
                "trainer.v1.sampler.custom_sampler.path=null to use verl's own sampler (it polls every 2 s)."
            )
        poll_interval = float(settings.get("poll_interval_s", DEFAULT_POLL_INTERVAL_S))
        if not poll_interval > 0:
            raise ValueError(
                f"trainer.v1.sampler.sampler_kwargs.poll_interval_s={poll_interval} must be > 0 (e.g. 0.1 seconds)."
            )
        refill_failed = bool(settings.get("sync_refill_failed_groups", False))
        super().__init__(
            trainer_mode=trainer_mode,
            trainer_config=trainer_config,
            max_off_policy_threshold=max_off_policy_threshold,
            max_off_policy_strategy=max_off_policy_strategy,
            sampler_kwargs=sampler_kwargs,
            poll_interval=poll_interval,
            refill_fn=refill_fn,
            # As verl builds its own sync sampler: refilling failed groups dispatches one prompt at a time.
            gen_batch_size=1 if refill_failed else None,
            sync_refill_failed_groups=refill_failed,
        )
        logger.info("CPUReplayBuffer: polling TransferQueue every %.3f s", poll_interval)
