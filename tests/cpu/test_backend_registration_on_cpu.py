"""The CPU backend registers through verl's own seams, only when asked, and each piece behaves like a CPU device.

Properties: with ``VERL_PLATFORM=cpu`` importing verl (which loads deltal's plugin) selects deltal's CPU platform,
registers the ``deltal_hf`` rollout in both of verl's rollout registries, makes process groups plain gloo (a real
one-rank group is created), and a second registration is a no-op; without it nothing of this happens. The device
module answers verl's memory, cache and RNG calls like a CPU. Each scenario runs in a fresh interpreter because
the registration changes process-wide state.
"""

import json
import os
import subprocess
import sys
import textwrap

import torch

from deltal.cpu.platform import CPUDeviceModule

PROBE = textwrap.dedent(
    """
    import json, os
    import torch
    import verl
    from verl.plugin.platform import PlatformRegistry, get_platform
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry
    facts = {"registered": "cpu" in PlatformRegistry.registered_names(),
             "rollout": ("deltal_hf", "async") in _ROLLOUT_REGISTRY,
             "replica": "deltal_hf" in RolloutReplicaRegistry._registry}
    if os.environ.get("VERL_PLATFORM") == "cpu":
        import verl.utils.distributed as dist
        from deltal.cpu.backend import register_cpu_backend
        wrapped = dist.initialize_global_process_group_ray
        register_cpu_backend()
        platform = get_platform()
        facts.update(device=platform.device_name, current=platform.current_device(),
                     comm=platform.communication_backend_name(), resource=platform.ray_resource_name(),
                     stays_on_cpu=str(torch.ones(1).to(platform.current_device()).device),
                     idempotent=dist.initialize_global_process_group_ray is wrapped,
                     engine_device=os.environ.get("VERL_ENGINE_DEVICE"),
                     replica_class=RolloutReplicaRegistry.get("deltal_hf").__name__)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["PROBE_PORT"], RANK="0", WORLD_SIZE="1")
        dist.initialize_global_process_group_ray()
        facts["backend"] = torch.distributed.get_backend()
        torch.distributed.destroy_process_group()
    print("FACTS" + json.dumps(facts))
    """
)


def _probe(tmp_path, **env):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    full_env = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "VERL_ENGINE_DEVICE")}
    full_env.update(PROBE_PORT=str(port), HF_HOME=str(tmp_path / "hf"), **env)
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=full_env, capture_output=True, text=True, timeout=240, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("FACTS"))
    return json.loads(line[len("FACTS") :])


def test_cpu_platform_rollout_and_gloo_are_registered_when_asked(tmp_path):
    facts = _probe(tmp_path, VERL_PLATFORM="cpu")
    assert facts["registered"] and facts["rollout"] and facts["replica"]
    assert (facts["device"], facts["current"], facts["comm"], facts["resource"]) == ("cpu", "cpu", "gloo", "GPU")
    assert facts["stays_on_cpu"] == "cpu"
    assert facts["idempotent"], "a second register_cpu_backend() must not wrap the process-group function again"
    assert facts["engine_device"] == "cuda"
    assert facts["replica_class"] == "HFReplica"
    assert facts["backend"] == "gloo"


def test_nothing_is_registered_without_verl_platform_cpu(tmp_path):
    facts = _probe(tmp_path)
    assert facts == {"registered": False, "rollout": False, "replica": False}


def test_device_module_answers_memory_cache_and_rng_calls_like_a_cpu():
    device = CPUDeviceModule()
    assert device.is_available() and device.device_count() == 1 and device.current_device() == "cpu"
    assert device.memory_allocated() == device.max_memory_reserved() == 0
    assert device.get_device_name() == "CPU"
    free, total = device.mem_get_info()
    assert 0 < free <= total
    device.empty_cache()
    device.synchronize()  # torch.cpu's own, reached through the facade
    state = device.get_rng_state()
    first = torch.rand(3)
    device.set_rng_state(state)
    assert torch.equal(torch.rand(3), first)
