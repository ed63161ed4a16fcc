"""deltal.train.preflight stops a run before Ray starts when its data, math server, plugin, model, GPUs, engines or
cluster is not ready, with a message that names the fix, and lets a ready run through.

GPU facts are simulated (a stand-in torch module, a stand-in package finder); the per-node Ray probe runs for real on
a local one-node Ray cluster, with a runtime env whose PYTHONPATH hides deltal or fakes another version of it."""

from __future__ import annotations

import http.server
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from deltal.data.rl_format import raw_prompt_messages, rl_row, write_parquet
from deltal.train import preflight
from deltal.train.preflight import PreflightError, run_preflight

REPO = Path(__file__).resolve().parents[2]
DISPATCHER = str(REPO / "deltal" / "rewards" / "__init__.py")


def write_rows(path: Path, data_source: str, n: int = 3) -> str:
    rows = [
        rl_row(data_source, raw_prompt_messages(f"question {i}"), "test", ground_truth=str(i), split="train", index=i)
        for i in range(n)
    ]
    return str(write_parquet(rows, path))


@pytest.fixture
def model_dir(tmp_path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return str(folder)


@pytest.fixture
def countdown_config(tmp_path, model_dir):
    train = write_rows(tmp_path / "countdown" / "train.parquet", "countdown")
    test = write_rows(tmp_path / "countdown" / "test.parquet", "countdown")
    return OmegaConf.create(
        {
            "data": {"train_files": train, "val_files": test},
            "reward": {"custom_reward_function": {"path": "pkg://deltal.rewards", "name": "compute_score_async"}},
            "actor_rollout_ref": {"model": {"path": model_dir}},
            "trainer": {"nnodes": 1, "device": "cpu", "n_gpus_per_node": 1},
            "ray_kwargs": {"ray_init": {"num_cpus": None}},
        }
    )


@pytest.fixture
def registered(monkeypatch):
    """Stand in for verl having loaded deltal's plugin (the real check imports verl; one test keeps it real)."""
    monkeypatch.setattr("deltal.verl_adapter.registration.assert_registered", lambda: None)


def math_config(tmp_path, model_dir, url: str):
    files = {
        name: write_rows(tmp_path / "math" / f"{name}.parquet", source)
        for name, source in [("train", "open_reasoner_zero"), ("math500", "math500"), ("aime2024", "aime2024")]
    }
    return OmegaConf.create(
        {
            "data": {"train_files": files["train"], "val_files": [files["math500"], files["aime2024"]]},
            "reward": {"custom_reward_function": {"path": "pkg://deltal.rewards.math", "name": "compute_score_async"}},
            "actor_rollout_ref": {"model": {"path": model_dir}},
            "trainer": {"nnodes": 1, "device": "cpu", "n_gpus_per_node": 1},
            "ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {"MATH_SERVER_URL": url}}}},
        }
    )


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def healthy_server_url():
    """A loopback HTTP server whose /health answers like deltal's math server."""

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = json.dumps({"status": "ok"}).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ready_countdown_run_passes_with_the_real_plugin_check(countdown_config):
    run_preflight(countdown_config)


def test_missing_data_file_names_the_builder_command(countdown_config, registered, tmp_path):
    countdown_config.data.val_files = str(tmp_path / "nowhere" / "test.parquet")
    with pytest.raises(PreflightError) as error:
        run_preflight(countdown_config)
    message = str(error.value)
    assert "nowhere/test.parquet does not exist" in message
    assert "python -m deltal.data.countdown --out" in message and "DATA_DIR" in message


def test_file_without_ground_truth_is_rejected(countdown_config, registered, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"data_source": "countdown", "prompt": "x", "reward_model": {"style": "rule"}}]), bad
    )
    countdown_config.data.train_files = str(bad)
    with pytest.raises(PreflightError, match=r"reward_model\.ground_truth"):
        run_preflight(countdown_config)


def test_file_without_prompt_column_is_rejected(countdown_config, registered, tmp_path):
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist([{"data_source": "countdown", "reward_model": {"ground_truth": "1"}}]), bad)
    countdown_config.data.train_files = str(bad)
    with pytest.raises(PreflightError, match=r"\['prompt'\]"):
        run_preflight(countdown_config)


def test_data_source_without_a_deltal_reward_is_rejected(countdown_config, registered, tmp_path):
    countdown_config.data.val_files = write_rows(tmp_path / "gsm8k.parquet", "gsm8k")
    with pytest.raises(PreflightError, match=r"\['gsm8k'\] cannot be scored"):
        run_preflight(countdown_config)


def test_dispatcher_given_as_a_file_path_is_checked_like_the_package(countdown_config, registered, tmp_path):
    countdown_config.reward.custom_reward_function.path = DISPATCHER
    run_preflight(countdown_config)
    countdown_config.data.val_files = write_rows(tmp_path / "gsm8k.parquet", "gsm8k")
    with pytest.raises(PreflightError, match=r"\['gsm8k'\] cannot be scored"):
        run_preflight(countdown_config)


def test_missing_reward_file_is_reported(countdown_config, registered, tmp_path):
    countdown_config.reward.custom_reward_function.path = str(tmp_path / "my_reward.py")
    with pytest.raises(PreflightError, match="my_reward.py does not exist"):
        run_preflight(countdown_config)


def test_math_reward_module_rejects_countdown_rows(tmp_path, model_dir, registered, healthy_server_url):
    config = math_config(tmp_path, model_dir, healthy_server_url)
    config.data.val_files = [write_rows(tmp_path / "cd.parquet", "countdown")]
    with pytest.raises(
        PreflightError, match=r"\['countdown'\] cannot be scored by the reward pkg://deltal.rewards.math"
    ):
        run_preflight(config)


def test_stopped_math_server_stops_a_math_run(tmp_path, model_dir, registered):
    url = closed_port_url()
    with pytest.raises(PreflightError) as error:
        run_preflight(math_config(tmp_path, model_dir, url))
    message = str(error.value)
    assert f"math server at {url} is not healthy" in message
    assert "bash server/math/start.sh" in message


def test_math_run_passes_when_the_server_answers(tmp_path, model_dir, registered, healthy_server_url):
    run_preflight(math_config(tmp_path, model_dir, healthy_server_url))


def test_countdown_run_does_not_need_the_math_server(countdown_config, registered, monkeypatch):
    monkeypatch.setenv("MATH_SERVER_URL", closed_port_url())
    run_preflight(countdown_config)


def test_missing_plugin_is_reported_with_the_registration_message(countdown_config, monkeypatch):
    def not_registered():
        raise RuntimeError("verl did not load deltal's plugin: reinstall with pip install -e .")

    monkeypatch.setattr("deltal.verl_adapter.registration.assert_registered", not_registered)
    with pytest.raises(PreflightError, match="verl did not load deltal's plugin: reinstall"):
        run_preflight(countdown_config)


def test_no_reward_worker_needs_deltals_cpu_agent_loop_and_no_reward_model(countdown_config, registered):
    OmegaConf.update(countdown_config, "reward.num_workers", 0, force_add=True)
    OmegaConf.update(countdown_config, "reward.reward_model.enable", False, force_add=True)
    # verl's agent loop picks a reward worker for every response (random.choice of an empty list mid-rollout).
    with pytest.raises(
        PreflightError, match=r"reward\.num_workers=0 starts no reward worker.*set reward\.num_workers=1"
    ):
        run_preflight(countdown_config)
    path = "actor_rollout_ref.rollout.agent.agent_loop_manager_class"
    OmegaConf.update(countdown_config, path, preflight.IN_PROCESS_REWARD_MANAGER, force_add=True)
    run_preflight(countdown_config)
    OmegaConf.update(countdown_config, "reward.reward_model.enable", True)
    with pytest.raises(PreflightError, match=r"reward model .*set reward\.num_workers=1"):
        run_preflight(countdown_config)
    OmegaConf.update(countdown_config, "reward.num_workers", 1)
    run_preflight(countdown_config)


def test_model_folder_without_config_json_is_rejected(countdown_config, registered, tmp_path):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    countdown_config.actor_rollout_ref.model.path = str(empty)
    with pytest.raises(PreflightError, match="has no config.json"):
        run_preflight(countdown_config)


def test_missing_local_model_path_is_rejected(countdown_config, registered, tmp_path):
    countdown_config.actor_rollout_ref.model.path = str(tmp_path / "no_such_model")
    with pytest.raises(PreflightError, match="does not exist. Download the model"):
        run_preflight(countdown_config)


def test_uncached_hub_id_only_warns_that_it_needs_the_network(
    countdown_config, registered, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    countdown_config.actor_rollout_ref.model.path = "Qwen/Qwen2.5-3B"
    with caplog.at_level(logging.WARNING, logger=preflight.__name__):
        run_preflight(countdown_config)
    assert "needs network access" in caplog.text


def test_several_nodes_need_a_ray_cluster_to_join(countdown_config, registered, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    countdown_config.trainer.nnodes = 2
    with pytest.raises(PreflightError, match="export RAY_ADDRESS"):
        run_preflight(countdown_config)
    probed = []
    monkeypatch.setattr(preflight, "check_ray_nodes", lambda config: probed.append(config) or [])
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    run_preflight(countdown_config)
    assert len(probed) == 1, "a run on several nodes probes every node's environment"


def test_every_problem_is_reported_at_once(countdown_config, registered, tmp_path):
    countdown_config.data.train_files = str(tmp_path / "a.parquet")
    countdown_config.data.val_files = str(tmp_path / "b.parquet")
    countdown_config.actor_rollout_ref.model.path = str(tmp_path / "no_model")
    with pytest.raises(PreflightError) as error:
        run_preflight(countdown_config)
    message = str(error.value)
    assert message.startswith("3 problem(s):")
    assert "a.parquet" in message and "b.parquet" in message and "no_model" in message


def fake_torch(available: bool, count: int = 0, cuda: str | None = "13.0") -> SimpleNamespace:
    return SimpleNamespace(
        __version__="2.11.0",
        version=SimpleNamespace(cuda=cuda),
        cuda=SimpleNamespace(is_available=lambda: available, device_count=lambda: count),
    )


def gpu_config(n_gpus: int = 8, nnodes: int = 1, **model) -> OmegaConf:
    return OmegaConf.create(
        {
            "trainer": {"device": "cuda", "n_gpus_per_node": n_gpus, "nnodes": nnodes},
            "actor_rollout_ref": {"model": model, "rollout": {"name": "vllm"}, "actor": {"strategy": "fsdp2"}},
        }
    )


def test_no_cuda_names_the_driver_and_the_cpu_quickstart():
    (problem,) = preflight.check_cuda(gpu_config(), fake_torch(available=False))
    assert "CUDA is not available" in problem and "CUDA 13.0 build" in problem
    assert "nvidia-smi" in problem and "driver >= 580" in problem and "quickstart-cpu.sh" in problem
    (problem,) = preflight.check_cuda(gpu_config(), fake_torch(available=False, cuda=None))
    assert "CPU-only build" in problem


def test_fewer_gpus_than_n_gpus_names_the_count_to_set(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    (problem,) = preflight.check_cuda(gpu_config(n_gpus=8), fake_torch(available=True, count=4))
    assert "trainer.n_gpus_per_node=8 but this node sees 4 GPU(s) (CUDA_VISIBLE_DEVICES=0,1,2,3)" in problem
    assert "set N_GPUS=4" in problem
    assert preflight.check_cuda(gpu_config(n_gpus=4), fake_torch(available=True, count=4)) == []
    # Several nodes: the driver's own count says nothing about the others (the Ray probe counts nodes).
    assert preflight.check_cuda(gpu_config(n_gpus=8, nnodes=2), fake_torch(available=True, count=0)) == []


def test_cpu_runs_skip_the_gpu_checks(countdown_config):
    assert preflight.check_cuda(countdown_config, fake_torch(available=False)) == []
    assert preflight.check_engines(countdown_config, find_spec=lambda name: None) == []


def test_missing_flash_attn_stops_a_flash_attention_run_with_the_sdpa_fix():
    missing = {"flash_attn"}

    def find_spec(name):
        return None if name in missing else object()

    (problem,) = preflight.check_engines(gpu_config(), find_spec)
    assert "flash-attn is not installed" in problem and "ATTN_IMPL=sdpa" in problem
    assert "use_remove_padding=False" in problem and "bash setup.sh" in problem
    sdpa = gpu_config(override_config={"attn_implementation": "sdpa"}, use_remove_padding=False)
    assert preflight.check_engines(sdpa, find_spec) == []
    missing.clear()
    assert preflight.check_engines(gpu_config(), find_spec) == []


def test_uninstalled_rollout_engine_points_to_the_supported_vllm_path():
    config = gpu_config(override_config={"attn_implementation": "sdpa"})
    config.actor_rollout_ref.rollout.name = "sglang"
    (problem,) = preflight.check_engines(config, lambda name: None if name == "sglang" else object())
    assert "rollout.name=sglang but sglang is not installed" in problem and "rollout.name=vllm" in problem


RAY_PROBE_SCRIPT = """
import json, sys, ray
from omegaconf import OmegaConf
from deltal.train import preflight
ray.init(num_cpus=1, include_dashboard=False, _temp_dir=sys.argv[1], logging_level="ERROR")
expected = preflight.driver_versions()
hidden, other_version = sys.argv[2], sys.argv[3]
results = {
    "same_env": preflight.probe_ray_nodes(expected, nnodes=1),
    "hidden": preflight.probe_ray_nodes(expected, nnodes=1, runtime_env={"env_vars": {"PYTHONPATH": hidden}}),
    "other_version": preflight.probe_ray_nodes(
        expected, nnodes=1, runtime_env={"env_vars": {"PYTHONPATH": other_version}}
    ),
    "too_few_nodes": preflight.probe_ray_nodes(expected, nnodes=2),
    # The entry point: a two-node run whose runtime env (as verl's config writes it) hides deltal.
    "from_config": preflight.check_ray_nodes(OmegaConf.create({
        "trainer": {"nnodes": 2},
        "ray_kwargs": {"ray_init": {"address": "auto", "runtime_env": {
            "py_executable": None, "env_vars": {"PYTHONPATH": hidden},
        }}},
    })),
}
ray.shutdown()
print(json.dumps(results))
"""


@pytest.mark.slow  # one local Ray cluster and three worker processes that import verl: about 30 s on 2 cores
def test_ray_node_probe_finds_a_node_without_deltal_or_with_another_version(tmp_path, ray_tmp_dir):
    # A node "without deltal": a package of that name first on the path, which fails to import.
    hidden = tmp_path / "hidden"
    (hidden / "deltal").mkdir(parents=True)
    (hidden / "deltal" / "__init__.py").write_text("raise ImportError('deltal is not installed on this node')\n")
    # A node with another deltal: the real package, but metadata that says 0.0.1 found first.
    other = tmp_path / "other"
    (other / "deltal-0.0.1.dist-info").mkdir(parents=True)
    (other / "deltal-0.0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: deltal\nVersion: 0.0.1\n")
    result = subprocess.run(
        [sys.executable, "-c", RAY_PROBE_SCRIPT, ray_tmp_dir, str(hidden), str(other)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        # Ray puts the driver's working folder first on its workers' path: keep the checkout out of it.
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["same_env"] == []
    (problem,) = found["hidden"]
    assert "cannot import deltal (ImportError: deltal is not installed on this node)" in problem
    assert "every node needs the same environment with deltal installed" in problem
    (problem,) = found["other_version"]
    assert "has deltal 0.0.1 but the driver has" in problem
    (problem,) = found["too_few_nodes"]
    assert "trainer.nnodes=2 but the Ray cluster has 1 node(s)" in problem
    too_few, hidden_node = found["from_config"]
    assert "trainer.nnodes=2" in too_few and "cannot import deltal" in hidden_node
