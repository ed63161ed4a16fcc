"""Preflight checks of the other nodes of a run over several nodes.

Ray places reward, rollout and trainer workers on any node, and reward workers import ``pkg://deltal.rewards`` there,
so every node needs the driver's environment. A run on several nodes must join a running Ray cluster; once it can,
one tiny Ray task per node reports whether deltal and verl import there with the driver's versions, and whether
flash-attn's kernels import there when the actor uses them.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from deltal.train.preflight.environment_checks import actor_attention, on_cuda

# Seconds to wait for every Ray node to answer the environment probe (a cold node imports verl first).
NODE_PROBE_TIMEOUT_S = 180.0
# The packages every Ray node must import with the driver's version, and the module that proves it.
NODE_PACKAGES = {"deltal": "deltal.rewards", "verl": "verl"}
SAME_ENVIRONMENT_FIX = (
    "every node needs the same environment with deltal installed (run bash setup.sh on each node or share one env), "
    "because Ray places reward and trainer workers on any node"
)


def ray_init_kwargs(config: DictConfig) -> dict:
    ray_init = config.get("ray_kwargs", {}).get("ray_init", {}) or {}
    return OmegaConf.to_container(ray_init, resolve=True) if isinstance(ray_init, DictConfig) else dict(ray_init)


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


def _make_node_probe(packages: dict[str, str], check_attention: bool) -> Callable[[], dict]:
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
        if check_attention and report.get("deltal") is not None:
            try:
                from deltal.attention_kernels import flash_attn_problem

                report["flash_attn_problem"] = flash_attn_problem()
            except Exception as exc:  # noqa: BLE001 - an older deltal without the check, or torch failing, lands here
                report["flash_attn_problem"] = f"the flash-attn check failed ({type(exc).__name__}: {exc})"
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
    check_attention: bool = False,
) -> list[str]:
    """Problems found by one tiny task on every alive node of the connected Ray cluster (Ray must be initialised):
    too few nodes, a node where deltal or verl does not import or has another version than ``expected``, and with
    ``check_attention`` a node where flash-attn's kernels do not import."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    problems = []
    if len(nodes) < nnodes:
        problems.append(
            f"trainer.nnodes={nnodes} but the Ray cluster has {len(nodes)} node(s): run "
            "`ray start --address=<head-ip>:6379` on every node, then check `ray status`."
        )
    probe = ray.remote(_make_node_probe(NODE_PACKAGES, check_attention))
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
    for node_id, ref in refs.items():
        address = addresses[node_id]
        if ref not in ready:
            problems.append(f"Ray node {address} did not answer the environment probe within {timeout_s:.0f} s.")
            continue
        try:
            report = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a node whose worker cannot even start is reported like the rest
            problems.append(
                f"Ray node {address} could not run the environment probe ({type(exc).__name__}): "
                f"{SAME_ENVIRONMENT_FIX}."
            )
            continue
        where = f"Ray node {address} ({report['host']})"
        fix = SAME_ENVIRONMENT_FIX
        for name, version in expected.items():
            if report.get(name) is None:
                problems.append(f"{where} cannot import {name} ({report.get(f'{name}_error')}): {fix}.")
            elif report[name] != version:
                problems.append(f"{where} has {name} {report[name]} but the driver has {version}: {fix}.")
        if report.get("flash_attn_problem"):
            problems.append(
                f"{where}: the actor uses flash_attention_2 but there {report['flash_attn_problem']}. Install the "
                "same flash-attn on every node (bash setup.sh), or run every node on SDPA: ATTN_IMPL=sdpa."
            )
    return problems


def check_ray_nodes(config: DictConfig) -> list[str]:
    """On a run over several nodes: probe each node's environment (see probe_ray_nodes) under the run's runtime env,
    joining the Ray cluster for the probe unless this process is already connected."""
    nnodes = int(config.trainer.get("nnodes", 1))
    ray_init = ray_init_kwargs(config)
    address = ray_init.get("address") or os.environ.get("RAY_ADDRESS")
    if nnodes <= 1 or not address:
        return []
    import ray

    # Unset keys (verl's config carries e.g. py_executable: null) are left to Ray's defaults.
    runtime_env = {key: value for key, value in (ray_init.get("runtime_env") or {}).items() if value is not None}
    check_attention = on_cuda(config) and actor_attention(config) == "flash_attention_2"
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
        return probe_ray_nodes(
            driver_versions(), nnodes, runtime_env=runtime_env or None, check_attention=check_attention
        )
    finally:
        if joined:
            ray.shutdown()
