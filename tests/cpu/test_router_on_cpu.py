"""The CPU backend's request router (``deltal.cpu.router``) routes like verl's and starts without verl.

Properties: a new request goes to the server with the fewest requests in flight (ties: the first registered), a
known request id returns to its server while that server is in the pool, releases and server changes keep the
counts right; the class answers every method of verl 0.9.1's router protocol (``RequestLoadBalancer`` in
verl/workers/rollout/router.py); ``backend=cpu`` names it through verl's ``rollout.router_config_path`` file, which
verl's own loader reads; and built by verl's ``get_router_handle`` with a handle to deltal's rollout server, its Ray
process holds neither verl nor torch, which is what the router buys (docs/cpu-step-profile.md).
"""

import inspect
import subprocess
import sys
import textwrap

import pytest
from omegaconf import OmegaConf
from verl.workers.rollout import router as verl_router

from deltal.config import package_file
from deltal.cpu import router as cpu_router
from deltal.cpu.router import CPURequestRouter
from deltal.train import compose_config

HEAVY_MODULES = ("verl", "torch", "transformers", "tensordict")


def _router(*server_ids):
    return CPURequestRouter({server_id: f"handle-{server_id}" for server_id in server_ids}, {})


def test_new_requests_go_to_the_least_busy_server_and_ties_to_the_first():
    router = _router("a", "b")
    assert router.acquire_server("r1") == ("a", "handle-a")
    assert router.acquire_server("r2") == ("b", "handle-b")
    assert router.acquire_server("r3")[0] == "a"
    router.release_server("a")
    router.release_server("a")
    assert router.acquire_server("r4")[0] == "a"
    assert router.get_status()["servers"] == {"a": 1, "b": 1}
    assert router.get_total_inflight() == 2


def test_a_known_request_returns_to_its_server_until_that_server_leaves():
    router = _router("a", "b")
    assert router.acquire_server("conversation")[0] == "a"
    router.acquire_server("other")  # b
    router.acquire_server("third")  # a: a and b are tied at one, a is first
    # a is busier now (2 vs 1) but the conversation's next turn still goes there.
    assert router.acquire_server("conversation")[0] == "a"
    router.remove_servers(["a"])
    assert router.get_all_servers() == ["b"]
    assert router.acquire_server("conversation") == ("b", "handle-b")
    router.release_server("a")  # a release for a removed server is ignored
    assert router.get_status()["servers"] == {"b": 2}


def test_releases_never_go_below_zero_and_added_servers_take_new_requests():
    router = _router("a")
    router.release_server("a")
    assert router.get_total_inflight() == 0
    router.acquire_server("r1")
    router.add_servers({"b": "handle-b"})
    assert router.acquire_server("r2") == ("b", "handle-b")
    assert router.get_status()["registered_handles"] == ["a", "b"]


def test_clearing_the_sticky_cache_routes_known_requests_by_load():
    router = _router("a", "b")
    router.acquire_server("r1")  # a
    router.acquire_server("r1")  # a again (sticky)
    assert router.clear_sticky_cache() == {"cleared_entries": 1, "server_loads": {"a": 2, "b": 0}}
    assert router.acquire_server("r1")[0] == "b"


def test_the_sticky_cache_forgets_the_least_recently_used_request(monkeypatch):
    monkeypatch.setattr(cpu_router, "STICKY_CACHE_SIZE", 2)
    router = _router("a", "b")
    router.acquire_server("r1")  # a
    router.acquire_server("r2")  # b
    router.acquire_server("r1")  # a, now the most recent
    router.acquire_server("r3")  # b (a has 2 in flight): r2 is forgotten
    router.release_server("b")
    router.release_server("b")  # b is idle, a has 2
    assert router.acquire_server("r1")[0] == "a"  # still remembered
    assert router.acquire_server("r2")[0] == "b"  # routed anew, by load


def test_an_empty_pool_is_an_error_that_says_so():
    router = _router()
    with pytest.raises(RuntimeError, match="no servers"):
        router.acquire_server("r1")


def test_every_method_of_verls_router_protocol_is_answered_with_its_parameters():
    protocol = {
        name: inspect.signature(member)
        for name, member in vars(verl_router.RequestLoadBalancer).items()
        if callable(member) and not name.startswith("_")
    }
    assert protocol, "verl's router protocol moved"
    for name, signature in protocol.items():
        ours = inspect.signature(getattr(CPURequestRouter, name))
        assert list(signature.parameters) == list(ours.parameters), name


def test_the_cpu_backend_names_the_router_through_verls_router_file():
    cfg = compose_config(["backend=cpu", "method=delta_l"])
    path = cfg.actor_rollout_ref.rollout.router_config_path
    assert path == package_file("cpu/router.yaml")
    # verl's own reader and class loader, as get_router_handle uses them.
    router_class = verl_router._load_router_yaml(path)["router_class"]
    assert verl_router._resolve_router_class(router_class) is CPURequestRouter
    verls_router = ["backend=cpu", "method=delta_l", "actor_rollout_ref.rollout.router_config_path=null"]
    assert compose_config(verls_router).actor_rollout_ref.rollout.router_config_path is None


def test_a_missing_package_file_names_the_fix():
    with pytest.raises(ValueError, match="the deltal package has no file cpu/nope.yaml"):
        package_file("cpu/nope.yaml")
    config = OmegaConf.create({"path": "${deltal_file:cpu/nope.yaml}"})
    with pytest.raises(Exception, match="reinstall deltal"):
        OmegaConf.to_container(config, resolve=True)


def test_importing_the_router_and_the_server_class_loads_nothing_heavy():
    code = "import sys, deltal.cpu.router, deltal.cpu.token_server\nprint(sorted(set(sys.modules) & set(%r)))"
    result = subprocess.run([sys.executable, "-c", code % (HEAVY_MODULES,)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_verls_get_router_handle_starts_the_router_in_a_process_without_verl_or_torch(ray_tmp_dir, tiny_assets):
    # A handle to deltal's rollout server travels in the router's constructor arguments, as verl sends them: Ray
    # imports the server class's module in every process that receives such a handle.
    code = textwrap.dedent(
        f"""
        import ray
        from verl.workers.rollout.router import get_router_handle
        from deltal.config import package_file
        from deltal.cpu.token_server import HFTokenServer
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir={ray_tmp_dir!r},
                 runtime_env={{"env_vars": {{"VERL_PLATFORM": "cpu"}}}})
        # Never scheduled (no node has 64 CPUs): the handle is all the router needs.
        server = ray.remote(HFTokenServer).options(num_cpus=64).remote(None, None, 0)
        router = get_router_handle({{"server-0": server}}, router_config_path=package_file("cpu/router.yaml"))
        server_id, handle = ray.get(router.acquire_server.remote("r1"))
        def loaded(self):
            import sys
            return type(self).__name__, sorted(set(sys.modules) & set({HEAVY_MODULES!r}))
        print(server_id, handle == server, *ray.get(router.__ray_call__.remote(loaded)))
        ray.shutdown()
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    # Ray may print its own lines (an autoscaler note about the 64-CPU request) around the one printed here.
    assert "server-0 True CPURequestRouter []" in result.stdout.splitlines(), result.stdout[-3000:]
