"""Preflight checks of what the run's config points at: plugin, data, rewards, math server, reward workers, model.

Each function returns a list of problems (empty when fine), each naming its fix; :func:`deltal.train.preflight.
run_preflight` collects them.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig, ListConfig

from deltal.train.preflight.errors import PreflightError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("data_source", "prompt", "reward_model")
# A Hugging Face hub id: "org/name", one slash, no path prefix.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DEFAULT_MATH_SERVER_URL_ENV = "MATH_SERVER_URL"
# The agent-loop manager that scores rule-based rewards in its own processes (deltal/cpu/agent_loop.py).
IN_PROCESS_REWARD_MANAGER = "deltal.cpu.agent_loop.CPUAgentLoopManager"


def _as_paths(files: str | Iterable[str] | None) -> list[str]:
    if files is None:
        return []
    if isinstance(files, str):
        return [files]
    if isinstance(files, ListConfig | list | tuple):
        return [str(f) for f in files]
    raise PreflightError(f"data file setting must be a path or a list of paths, got {files!r}")


def check_data_file(path: str) -> tuple[list[str], set[str]]:
    """Problems with one parquet file (empty when fine) and the data sources it holds."""
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded):
        return [
            f"data file {path} does not exist. Build the data with `python -m deltal.data.countdown --out <DIR> "
            "--template base` (CountDown) or `python -m deltal.data.math --out <DIR> ...` (Math), then set "
            "DATA_DIR=<DIR> (or data.train_files / data.val_files)."
        ], set()
    try:
        schema = pq.read_schema(expanded)
    except Exception as exc:  # noqa: BLE001 - any parquet failure is reported with the file it came from
        return [f"data file {path} is not a readable parquet file ({type(exc).__name__}: {exc}); rebuild it."], set()

    missing = [column for column in REQUIRED_COLUMNS if column not in schema.names]
    if "reward_model" in schema.names:
        reward_type = schema.field("reward_model").type
        if not hasattr(reward_type, "get_field_index") or reward_type.get_field_index("ground_truth") < 0:
            missing.append("reward_model.ground_truth")
    if missing:
        return [
            f"data file {path} lacks the column(s) {missing}: verl and deltal's reward need data_source, prompt "
            "and reward_model.ground_truth. Rebuild it with a deltal builder (python -m deltal.data.<task>)."
        ], set()

    sources = pc.unique(pq.read_table(expanded, columns=["data_source"]).column("data_source")).to_pylist()
    return [], {str(source) for source in sources}


def check_data(config: DictConfig) -> tuple[list[str], set[str]]:
    """Problems with every train and validation file, and the data sources they hold together."""
    problems: list[str] = []
    sources: set[str] = set()
    for path in _as_paths(config.data.train_files) + _as_paths(config.data.get("val_files")):
        file_problems, file_sources = check_data_file(path)
        problems += file_problems
        sources |= file_sources
    return problems, sources


def scorable_sources(reward_path: str | None) -> set[str] | None:
    """Data sources deltal's reward at ``reward_path`` can score; None when the reward is not deltal's."""
    from deltal.rewards import SCORERS

    if not reward_path:
        return None
    if reward_path.startswith("pkg://"):
        module = reward_path.removeprefix("pkg://").replace("/", ".")
        if module == "deltal.rewards":
            return set(SCORERS)
        if module.startswith("deltal.rewards."):
            return {source for source, target in SCORERS.items() if target.split(":")[0] == module}
        return None
    import deltal.rewards

    dispatcher = Path(deltal.rewards.__file__).resolve()
    return set(SCORERS) if Path(os.path.expanduser(reward_path)).resolve() == dispatcher else None


def check_reward_sources(sources: set[str], scorable: set[str], reward_path: str) -> list[str]:
    """Problems for data sources that the configured deltal reward cannot score."""
    unknown = sorted(sources - scorable)
    if not unknown:
        return []
    return [
        f"data_source value(s) {unknown} cannot be scored by the reward {reward_path} (it scores {sorted(scorable)}). "
        "Use reward.custom_reward_function.path=pkg://deltal.rewards with name=compute_score, or rebuild the data "
        "with python -m deltal.data.<task>."
    ]


def check_rewards(config: DictConfig, sources: set[str]) -> list[str]:
    """Problems with the custom reward: its file exists, it scores every data source, and the math server answers
    when any source is scored through it."""
    reward_path = (config.reward.get("custom_reward_function") or {}).get("path")
    reward_path = str(reward_path) if reward_path else None
    problems = []
    if reward_path and not reward_path.startswith("pkg://") and not os.path.isfile(os.path.expanduser(reward_path)):
        problems.append(
            f"reward.custom_reward_function.path={reward_path} does not exist; point it at deltal/rewards/__init__.py."
        )
    scorable = scorable_sources(reward_path)
    if scorable is not None:
        problems += check_reward_sources(sources, scorable, reward_path)
    if sources & math_sources():
        problems += check_math_server(math_server_url(config))
    return problems


def math_sources() -> set[str]:
    """Data sources scored through the math server (read from the reward dispatch table)."""
    from deltal.rewards import SCORERS

    return {source for source, target in SCORERS.items() if target.startswith("deltal.rewards.math:")}


def math_server_url(config: DictConfig) -> str | None:
    """The server address the reward workers will use: the one forwarded to Ray, else this process's env."""
    env_vars = config.get("ray_kwargs", {}).get("ray_init", {}).get("runtime_env", {}).get("env_vars", {}) or {}
    return env_vars.get(DEFAULT_MATH_SERVER_URL_ENV) or os.environ.get(DEFAULT_MATH_SERVER_URL_ENV)


def check_math_server(url: str | None) -> list[str]:
    """Problems reaching the LaTeX-equivalence server (empty when it answers its health check)."""
    try:
        from deltal.rewards.math import check_server_health
    except ImportError as exc:
        return [f"the math reward client deltal.rewards.math cannot be imported ({exc}); reinstall deltal."]
    try:
        check_server_health(url=url)
    except RuntimeError as exc:
        shown = url or "the default address"
        return [
            f"the math server at {shown} is not healthy ({exc}). Start it with `bash server/math/start.sh` "
            "(MATH_SERVER_HOST / MATH_SERVER_PORT) and set MATH_SERVER_URL to an address every node can reach."
        ]
    return []


def check_model(path: str) -> list[str]:
    """Problems with the model path; a hub id only logs (it needs the network or the Hugging Face cache)."""
    expanded = os.path.expanduser(path)
    if os.path.isdir(expanded):
        config_file = os.path.join(expanded, "config.json")
        if not os.path.isfile(config_file):
            return [f"model folder {path} has no config.json; point BASE_MODEL at a Hugging Face model folder."]
        if not os.access(config_file, os.R_OK):
            return [f"model folder {path} is not readable by this user; fix its permissions."]
        return []
    if not HUB_ID.fullmatch(path):
        return [
            f"model path {path} does not exist. Download the model (e.g. `huggingface-cli download Qwen/Qwen2.5-3B "
            "--local-dir <dir>`) and set BASE_MODEL=<dir>, or give a hub id like Qwen/Qwen2.5-3B."
        ]
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        logger.info("model %s is a hub id found in the local Hugging Face cache", path)
    else:
        logger.warning(
            "model %s is a hub id that is not in the Hugging Face cache (HF_HOME): the run will download it, which "
            "needs network access. Set BASE_MODEL to a local folder to run offline.",
            path,
        )
    return []


def check_reward_workers(config: DictConfig) -> list[str]:
    """``reward.num_workers=0`` (the CPU backend's setting) starts no ``RewardLoopWorker`` actor. Only deltal's CPU
    agent loop scoring rule-based rewards in its own processes runs without one; verl's agent loop hands every
    response to a reward worker, and a reward model is always scored by them."""
    workers = config.reward.get("num_workers")
    if workers is None or int(workers) > 0:
        return []
    manager = (config.actor_rollout_ref.get("rollout", {}).get("agent", {}) or {}).get("agent_loop_manager_class")
    needs = []
    if manager != IN_PROCESS_REWARD_MANAGER:
        needs.append(f"actor_rollout_ref.rollout.agent.agent_loop_manager_class={manager} sends each response to one")
    if config.reward.get("reward_model", {}).get("enable", False):
        needs.append("the reward model (reward.reward_model.enable=true) is scored by them")
    if not needs:
        return []
    return [
        f"reward.num_workers={workers} starts no reward worker, but {' and '.join(needs)}: set reward.num_workers=1."
    ]


def check_registration() -> list[str]:
    """Problems when verl did not load deltal's estimators."""
    from deltal.verl_adapter.registration import assert_registered

    try:
        assert_registered()
    except RuntimeError as exc:
        return [str(exc)]
    return []
