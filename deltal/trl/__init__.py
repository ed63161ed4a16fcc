"""ΔL Normalization for TRL's ``GRPOTrainer``: two lines change in a TRL script.

    from deltal.trl import DeltaLGRPOConfig, DeltaLGRPOTrainer

    args = DeltaLGRPOConfig(output_dir="out", delta_l_alpha=1.0, max_completion_length=1024, ...)  # was GRPOConfig
    trainer = DeltaLGRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=dataset)  # was GRPOTrainer

``DeltaLGRPOConfig`` is ``GRPOConfig`` plus ``delta_l_alpha``, ``delta_l_scope`` and ``delta_l_exclude_zero_advantage``
(``loss_type`` defaults to ``dr_grpo``, the constant denominator ΔL needs); ``DeltaLGRPOTrainer`` multiplies the
advantages of each generation batch by the ΔL weights (``deltal.trl.trainer``). ``deltal_reward`` scores completions
of deltal's datasets with deltal's rewards. Needs the ``trl`` extra (``pip install 'deltal[trl]'``). CPU example:
``deltal trl-quickstart`` (``deltal.quickstart.trl``); ``docs/trl.md`` has the details.

The names are loaded on first use, so ``deltal trl-quickstart --help`` and the reward need no TRL import.
"""

from __future__ import annotations

import importlib
from typing import Any

# The TRL release whose GRPOTrainer this adapter was read from and tested against (also pinned in pyproject.toml).
# The newest one verl 0.9.1 survives in the same environment: its FSDP worker imports AutoModelForCausalLMWithValueHead
# from trl.experimental.ppo whenever TRL is importable, and TRL 1.13.0 removed that module (docs/trl.md §7).
PINNED_TRL_VERSION = "1.12.0"

_EXPORTS = {
    "DeltaLGRPOConfig": "deltal.trl.config",
    "DeltaLGRPOTrainer": "deltal.trl.trainer",
    "DeltaLConfigError": "deltal.trl.weights",
    "deltal_reward": "deltal.trl.rewards",
}

__all__ = ["PINNED_TRL_VERSION", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deltal.trl' has no attribute {name!r}")
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as err:
        if err.name != "trl":
            raise
        raise ModuleNotFoundError(
            f"deltal.trl.{name} needs TRL: run `pip install 'deltal[trl]'` (trl=={PINNED_TRL_VERSION}), or "
            "`bash setup.sh --cpu`, which installs it.",
            name="trl",
        ) from err
