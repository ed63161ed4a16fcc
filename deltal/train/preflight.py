"""Checks that stop a training run before Ray starts, each with a message that says what to do.

``python -m deltal.train`` calls :func:`run_preflight` on the resolved config of every real run (``DRY_RUN=1``
skips it). It checks, and reports every failure at once:

- verl loaded deltal's plugin (its estimators are registered);
- the train and validation parquet files exist and have the columns verl and deltal's reward read
  (``data_source``, ``prompt``, ``reward_model.ground_truth``), and every ``data_source`` has a deltal reward;
- the LaTeX-equivalence server answers, when any file holds math data;
- the custom reward file exists, and ``reward.num_workers=0`` only goes with deltal's CPU agent loop and no reward
  model (nothing else scores without a reward worker);
- the model is a local folder with ``config.json``, or a hub id (then it only warns: that needs the network or
  a filled Hugging Face cache);
- on a CUDA run: torch sees CUDA, this node has ``trainer.n_gpus_per_node`` GPUs (one-node runs), the rollout
  engine is installed, and flash-attn is installed when the actor asks for ``flash_attention_2`` (verl's default);
- a run on several nodes has a Ray cluster to join, and on every node of it deltal and verl import with the
  driver's versions (one tiny Ray task per node: reward workers import ``pkg://deltal.rewards`` wherever Ray
  places them).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import DictConfig, ListConfig, OmegaConf

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("data_source", "prompt", "reward_model")
# A Hugging Face hub id: "org/name", one slash, no path prefix.
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
DEFAULT_MATH_SERVER_URL_ENV = "MATH_SERVER_URL"
# Seconds to wait for every Ray node to answer the environment probe (a cold node imports verl first).
NODE_PROBE_TIMEOUT_S = 180.0
# The packages every Ray node must import with the driver's version, and the module that proves it.
NODE_PACKAGES = {"deltal": "deltal.rewards", "verl": "verl"}
ROLLOUT_PACKAGES = {"vllm": "vllm", "sglang": "sglang"}
# The agent-loop manager that scores rule-based rewards in its own processes (deltal/cpu/agent_loop.py).
IN_PROCESS_REWARD_MANAGER = "deltal.cpu.agent_loop.CPUAgentLoopManager"


class PreflightError(RuntimeError):
    """The run cannot start; the message lists each problem and its fix."""


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


def check_ray_cluster(config: DictConfig) -> list[str]:
    """A run on several nodes must join a running Ray cluster instead of starting a one-node one."""
    if int(config.trainer.get("nnodes", 1)) <= 1:
        return []
    address = config.get("ray_kwargs", {}).get("ray_init", {}).get("address") or os.environ.get("RAY_ADDRESS")
    if address:
        return []
    return [
        f"trainer.nnodes={config.trainer.nnodes} but no Ray cluster to join: run `ray start --head` on the first "
        "node and `ray start --address=<head-ip>:6379` on the others, then export RAY_ADDRESS=<head-ip>:6379."
    ]


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


def _ray_init_kwargs(config: DictConfig) -> dict:
    ray_init = config.get("ray_kwargs", {}).get("ray_init", {}) or {}
    return OmegaConf.to_container(ray_init, resolve=True) if isinstance(ray_init, DictConfig) else dict(ray_init)


def check_cuda(config: DictConfig, torch_module=None) -> list[str]:
    """On a CUDA run: torch sees CUDA and, on one node, at least ``trainer.n_gpus_per_node`` GPUs."""
    if str(config.trainer.get("device", "cuda")) != "cuda":
        return []
    if torch_module is None:
        import torch as torch_module
    built_for = torch_module.version.cuda
    if not torch_module.cuda.is_available():
        build = f"a CUDA {built_for} build" if built_for else "a CPU-only build"
        return [
            f"CUDA is not available: torch {torch_module.__version__} is {build} and sees no GPU. Check that "
            "`nvidia-smi` lists the GPUs; torch 2.11 from PyPI is built for CUDA 13 and needs an NVIDIA driver >= 580 "
            "(upgrade the driver, or rerun bash setup.sh on a GPU node). Without GPUs, run the CPU quickstart: "
            "bash train_scripts/quickstart-cpu.sh."
        ]
    wanted = int(config.trainer.get("n_gpus_per_node") or 0)
    found = torch_module.cuda.device_count()
    if int(config.trainer.get("nnodes", 1)) <= 1 and found < wanted:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        return [
            f"trainer.n_gpus_per_node={wanted} but this node sees {found} GPU(s){shown}: set N_GPUS={found} "
            "(trainer.n_gpus_per_node), or free the GPUs."
        ]
    return []


def check_engines(config: DictConfig, find_spec: Callable = importlib.util.find_spec) -> list[str]:
    """On a CUDA run: the rollout engine is installed, and flash-attn too when the actor asks for it."""
    if str(config.trainer.get("device", "cuda")) != "cuda":
        return []
    problems = []
    model = config.actor_rollout_ref.model
    attention = (model.get("override_config") or {}).get("attn_implementation", "flash_attention_2")
    if attention == "flash_attention_2" and find_spec("flash_attn") is None:
        problems.append(
            "flash-attn is not installed but the actor uses attn_implementation=flash_attention_2 (verl's default), "
            "so the model load would fail. Install it (bash setup.sh without --skip-flash-attn), or use SDPA: "
            "ATTN_IMPL=sdpa for the launch scripts, i.e. ++actor_rollout_ref.model.override_config."
            "attn_implementation=sdpa actor_rollout_ref.model.use_remove_padding=False."
        )
    rollout = str(config.actor_rollout_ref.get("rollout", {}).get("name", ""))
    package = ROLLOUT_PACKAGES.get(rollout)
    if package and find_spec(package) is None:
        problems.append(
            f"actor_rollout_ref.rollout.name={rollout} but {package} is not installed in this environment. deltal "
            "supports vLLM rollouts with FSDP training (bash setup.sh installs them): set rollout.name=vllm."
        )
    strategy = str(config.actor_rollout_ref.get("actor", {}).get("strategy", "fsdp"))
    if strategy not in ("fsdp", "fsdp2"):
        logger.warning(
            "actor strategy %s is not a path deltal tests: its launch scripts and set-up cover vLLM + FSDP2 only",
            strategy,
        )
    return problems


def _make_node_probe(packages: dict[str, str]) -> Callable[[], dict]:
    """The task run on each Ray node. Defined inside a function so Ray pickles it by value: a node without deltal
    must still be able to run it and say what it lacks."""

    def probe() -> dict:
        import importlib
        import importlib.metadata
        import socket

        report = {"host": socket.gethostname()}
        for name, module in packages.items():
            try:
                importlib.import_module(module)
                report[name] = importlib.metadata.version(name)
            except Exception as exc:  # noqa: BLE001 - the report carries any failure back to the driver
                report[name] = None
                report[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        return report

    return probe


def driver_versions() -> dict[str, str]:
    """The versions of deltal and verl in this (the driver's) environment."""
    return {name: importlib.metadata.version(name) for name in NODE_PACKAGES}


def probe_ray_nodes(
    expected: dict[str, str],
    nnodes: int,
    runtime_env: dict | None = None,
    timeout_s: float = NODE_PROBE_TIMEOUT_S,
) -> list[str]:
    """Problems found by one tiny task on every alive node of the connected Ray cluster (Ray must be initialised):
    too few nodes, or a node where deltal or verl does not import or has another version than ``expected``."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    problems = []
    if len(nodes) < nnodes:
        problems.append(
            f"trainer.nnodes={nnodes} but the Ray cluster has {len(nodes)} node(s): run "
            "`ray start --address=<head-ip>:6379` on every node, then check `ray status`."
        )
    probe = ray.remote(_make_node_probe(NODE_PACKAGES))
    options = {"num_cpus": 0, "max_retries": 0}
    if runtime_env:
        options["runtime_env"] = runtime_env
    refs = {
        node["NodeID"]: probe.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False), **options
        ).remote()
        for node in nodes
    }
    addresses = {node["NodeID"]: node["NodeManagerAddress"] for node in nodes}
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    fix = (
        "every node needs the same environment with deltal installed (run bash setup.sh on each node or share "
        "one env), because Ray places reward and trainer workers on any node"
    )
    for node_id, ref in refs.items():
        address = addresses[node_id]
        if ref not in ready:
            problems.append(f"Ray node {address} did not answer the environment probe within {timeout_s:.0f} s.")
            continue
        try:
            report = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a node whose worker cannot even start is reported like the rest
            problems.append(f"Ray node {address} could not run the environment probe ({type(exc).__name__}): {fix}.")
            continue
        where = f"Ray node {address} ({report['host']})"
        for name, version in expected.items():
            if report.get(name) is None:
                problems.append(f"{where} cannot import {name} ({report.get(f'{name}_error')}): {fix}.")
            elif report[name] != version:
                problems.append(f"{where} has {name} {report[name]} but the driver has {version}: {fix}.")
    return problems


def check_ray_nodes(config: DictConfig) -> list[str]:
    """On a run over several nodes: probe each node's environment (see probe_ray_nodes) under the run's runtime env,
    joining the Ray cluster for the probe unless this process is already connected."""
    nnodes = int(config.trainer.get("nnodes", 1))
    ray_init = _ray_init_kwargs(config)
    address = ray_init.get("address") or os.environ.get("RAY_ADDRESS")
    if nnodes <= 1 or not address:
        return []
    import ray

    # Unset keys (verl's config carries e.g. py_executable: null) are left to Ray's defaults.
    runtime_env = {key: value for key, value in (ray_init.get("runtime_env") or {}).items() if value is not None}
    joined = not ray.is_initialized()
    if joined:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - any connection failure is reported with its fix
            return [
                f"cannot join the Ray cluster at {address} ({type(exc).__name__}: {exc}): check `ray status` on the "
                "head node and RAY_ADDRESS."
            ]
    try:
        return probe_ray_nodes(driver_versions(), nnodes, runtime_env=runtime_env or None)
    finally:
        if joined:
            ray.shutdown()


def check_registration() -> list[str]:
    """Problems when verl did not load deltal's estimators."""
    from deltal.verl_adapter.registration import assert_registered

    try:
        assert_registered()
    except RuntimeError as exc:
        return [str(exc)]
    return []


def run_preflight(config: DictConfig) -> None:
    """Raise PreflightError listing every problem that would stop or spoil the run ``config`` describes."""
    problems = check_registration()

    sources: set[str] = set()
    for path in _as_paths(config.data.train_files) + _as_paths(config.data.get("val_files")):
        file_problems, file_sources = check_data_file(path)
        problems += file_problems
        sources |= file_sources

    reward_path = (config.reward.get("custom_reward_function") or {}).get("path")
    reward_path = str(reward_path) if reward_path else None
    if reward_path and not reward_path.startswith("pkg://") and not os.path.isfile(os.path.expanduser(reward_path)):
        problems.append(
            f"reward.custom_reward_function.path={reward_path} does not exist; point it at deltal/rewards/__init__.py."
        )
    scorable = scorable_sources(reward_path)
    if scorable is not None:
        problems += check_reward_sources(sources, scorable, reward_path)
    if sources & math_sources():
        problems += check_math_server(math_server_url(config))

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
