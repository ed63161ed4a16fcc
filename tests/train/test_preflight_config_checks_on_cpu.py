"""deltal.train.preflight stops a run before Ray starts when what its config points at is not ready (data, rewards,
math server, plugin, reward workers, model), with a message that names the fix, reports every problem at once, and
lets a ready run through. The machine's checks (GPUs, engines, flash-attn) and the other nodes' have their own test
files (test_preflight_environment_checks_on_cpu.py, test_preflight_node_checks_on_cpu.py)."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from deltal.train.preflight import PreflightError, config_checks, run_preflight

REPO = Path(__file__).resolve().parents[2]
DISPATCHER = str(REPO / "deltal" / "rewards" / "__init__.py")


def math_config(tmp_path, model_dir, url: str, write_rows):
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


def test_data_source_without_a_deltal_reward_is_rejected(countdown_config, registered, tmp_path, write_rows):
    countdown_config.data.val_files = write_rows(tmp_path / "gsm8k.parquet", "gsm8k")
    with pytest.raises(PreflightError, match=r"\['gsm8k'\] cannot be scored"):
        run_preflight(countdown_config)


def test_dispatcher_given_as_a_file_path_is_checked_like_the_package(
    countdown_config, registered, tmp_path, write_rows
):
    countdown_config.reward.custom_reward_function.path = DISPATCHER
    run_preflight(countdown_config)
    countdown_config.data.val_files = write_rows(tmp_path / "gsm8k.parquet", "gsm8k")
    with pytest.raises(PreflightError, match=r"\['gsm8k'\] cannot be scored"):
        run_preflight(countdown_config)


def test_missing_reward_file_is_reported(countdown_config, registered, tmp_path):
    countdown_config.reward.custom_reward_function.path = str(tmp_path / "my_reward.py")
    with pytest.raises(PreflightError, match="my_reward.py does not exist"):
        run_preflight(countdown_config)


def test_math_reward_module_rejects_countdown_rows(tmp_path, model_dir, registered, healthy_server_url, write_rows):
    config = math_config(tmp_path, model_dir, healthy_server_url, write_rows)
    config.data.val_files = [write_rows(tmp_path / "cd.parquet", "countdown")]
    with pytest.raises(
        PreflightError, match=r"\['countdown'\] cannot be scored by the reward pkg://deltal.rewards.math"
    ):
        run_preflight(config)


def test_stopped_math_server_stops_a_math_run(tmp_path, model_dir, registered, write_rows):
    url = closed_port_url()
    with pytest.raises(PreflightError) as error:
        run_preflight(math_config(tmp_path, model_dir, url, write_rows))
    message = str(error.value)
    assert f"math server at {url} is not healthy" in message
    assert "bash server/math/start.sh" in message


def test_math_run_passes_when_the_server_answers(tmp_path, model_dir, registered, healthy_server_url, write_rows):
    run_preflight(math_config(tmp_path, model_dir, healthy_server_url, write_rows))


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
    OmegaConf.update(countdown_config, path, config_checks.IN_PROCESS_REWARD_MANAGER, force_add=True)
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
    with caplog.at_level(logging.WARNING, logger=config_checks.__name__):
        run_preflight(countdown_config)
    assert "needs network access" in caplog.text


def test_every_problem_is_reported_at_once(countdown_config, registered, tmp_path):
    countdown_config.data.train_files = str(tmp_path / "a.parquet")
    countdown_config.data.val_files = str(tmp_path / "b.parquet")
    countdown_config.actor_rollout_ref.model.path = str(tmp_path / "no_model")
    with pytest.raises(PreflightError) as error:
        run_preflight(countdown_config)
    message = str(error.value)
    assert message.startswith("3 problem(s):")
    assert "a.parquet" in message and "b.parquet" in message and "no_model" in message
