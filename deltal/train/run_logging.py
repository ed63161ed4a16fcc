"""Choose where a training run's metrics go, before Ray starts: W&B online, W&B offline, or local files.

``python -m deltal.train`` calls :func:`configure_loggers` on every real run. The rule:

- ``wandb`` in ``trainer.logger`` and ``WANDB_API_KEY`` set: W&B online, as asked.
- ``wandb`` asked, no key, ``WANDB_MODE`` set by the user (offline, disabled, ...): that mode is kept.
- ``wandb`` asked, no key, no mode: W&B runs offline (``WANDB_MODE=offline``); ``wandb sync`` uploads it later.
- ``wandb`` asked but the package is missing: it is replaced by verl's file logger (JSON lines).

It prints one line saying which, and never stops the run. The logging environment (``WANDB_MODE``, ``WANDB_DIR``,
``VERL_FILE_LOGGER_ROOT``, ...) is also forwarded to Ray's workers through ``ray_kwargs.ray_init.runtime_env``,
because the trainer that opens the loggers runs in a Ray actor, possibly on another node. The API key is never
written into the config (verl uploads the config to W&B); export it on every node before ``ray start``.
"""

from __future__ import annotations

import importlib.util
import os

from omegaconf import DictConfig, ListConfig, open_dict

# Environment variables that steer W&B and verl's file logger in the process that creates them.
FORWARDED_ENV = (
    "WANDB_MODE",
    "WANDB_DIR",
    "WANDB_ENTITY",
    "WANDB_BASE_URL",
    "VERL_FILE_LOGGER_ROOT",
    "VERL_FILE_LOGGER_PATH",
)


def _logger_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, ListConfig | list | tuple):
        return [str(v) for v in value]
    raise ValueError(f"trainer.logger must be a name or a list of names, got {value!r}")


def file_log_path(project: str, experiment: str) -> str:
    """Where verl's file logger writes this run's metrics (mirrors verl.utils.tracking.FileLogger)."""
    explicit = os.environ.get("VERL_FILE_LOGGER_PATH")
    if explicit:
        return os.path.abspath(explicit)
    root = os.path.expanduser(os.environ.get("VERL_FILE_LOGGER_ROOT", "."))
    return os.path.abspath(os.path.join(root, project, f"{experiment}.jsonl"))


def _choose_wandb_mode(loggers: list[str]) -> str:
    """Apply the rule above to ``loggers`` and the environment; return the sentence describing W&B's part."""
    if "wandb" not in loggers:
        return "W&B off (not in trainer.logger)"
    if importlib.util.find_spec("wandb") is None:
        loggers.remove("wandb")
        if "file" not in loggers:
            loggers.append("file")
        return "W&B not installed (pip install wandb), metrics go to verl's file logger instead"
    if os.environ.get("WANDB_API_KEY"):
        mode = os.environ.get("WANDB_MODE", "online")
        return f"W&B {mode} (WANDB_API_KEY is set)"
    if os.environ.get("WANDB_MODE"):
        return f"W&B {os.environ['WANDB_MODE']} (WANDB_MODE set by you, no WANDB_API_KEY)"
    os.environ["WANDB_MODE"] = "offline"
    where = os.environ.get("WANDB_DIR", "the trainer's working directory")
    return f"W&B offline, no WANDB_API_KEY: runs are kept in {where}/wandb, upload them later with `wandb sync`"


def _forward_env(config: DictConfig) -> None:
    """Copy the logging environment into the Ray runtime env so the trainer actor sees it on any node."""
    present = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    if not present:
        return
    with open_dict(config):
        # Create the missing levels one by one: DictConfig.setdefault returns the plain dict, not the config node.
        node = config
        for key in ("ray_kwargs", "ray_init", "runtime_env", "env_vars"):
            if node.get(key) is None:
                node[key] = {}
            node = node[key]
        for name, value in present.items():
            node[name] = value


def configure_loggers(config: DictConfig) -> None:
    """Set ``config.trainer.logger`` and the logging environment for this run, and print one line saying so."""
    loggers = _logger_list(config.trainer.get("logger"))
    wandb_part = _choose_wandb_mode(loggers)
    for directory in (os.environ.get("WANDB_DIR"), os.environ.get("VERL_FILE_LOGGER_ROOT")):
        if directory:
            os.makedirs(os.path.expanduser(directory), exist_ok=True)
    with open_dict(config):
        config.trainer.logger = loggers
    _forward_env(config)

    parts = [wandb_part]
    if "file" in loggers:
        parts.append(f"metrics file {file_log_path(config.trainer.project_name, config.trainer.experiment_name)}")
    if "console" in loggers:
        parts.append("console")
    print(f"deltal logging: {'; '.join(parts)}", flush=True)
