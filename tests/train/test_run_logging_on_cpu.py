"""deltal.train.run_logging picks W&B online with a key, W&B offline without one, and verl's file logger when wandb is
missing; it prints one line saying which, forwards the logging environment to Ray, and never stops the run."""

from __future__ import annotations

import importlib.util
import os

import pytest
from omegaconf import OmegaConf

from deltal.train.run_logging import configure_loggers, file_log_path

LOGGING_ENV = (
    "WANDB_API_KEY",
    "WANDB_MODE",
    "WANDB_DIR",
    "WANDB_ENTITY",
    "VERL_FILE_LOGGER_ROOT",
    "VERL_FILE_LOGGER_PATH",
)


@pytest.fixture(autouse=True)
def clean_logging_env(monkeypatch):
    # setenv first so that monkeypatch records each name and removes what configure_loggers sets after the test.
    for name in LOGGING_ENV:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def make_config(loggers=("console", "wandb", "file"), env_vars=None):
    ray_init = {"num_cpus": None, "runtime_env": {"py_executable": None}}
    if env_vars is not None:
        ray_init["runtime_env"]["env_vars"] = env_vars
    return OmegaConf.create(
        {
            "trainer": {"logger": list(loggers), "project_name": "deltal", "experiment_name": "countdown__x__m__seed1"},
            "ray_kwargs": {"ray_init": ray_init},
        }
    )


def forwarded(config) -> dict:
    return dict(config.ray_kwargs.ray_init.runtime_env.get("env_vars") or {})


def only_line(capsys) -> str:
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_api_key_keeps_wandb_online_and_never_copies_the_key(monkeypatch, capsys):
    monkeypatch.setenv("WANDB_API_KEY", "secret-key-123")
    config = make_config()
    configure_loggers(config)
    assert list(config.trainer.logger) == ["console", "wandb", "file"]
    assert "WANDB_MODE" not in os.environ
    assert "W&B online" in only_line(capsys)
    assert "secret-key-123" not in OmegaConf.to_yaml(config)


def test_no_api_key_switches_wandb_offline_and_forwards_the_mode_to_ray(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    config = make_config()
    configure_loggers(config)
    assert os.environ["WANDB_MODE"] == "offline"
    assert forwarded(config) == {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wb")}
    assert (tmp_path / "wb").is_dir()
    line = only_line(capsys)
    assert "W&B offline" in line and "wandb sync" in line and str(tmp_path / "wb") in line


def test_mode_chosen_by_the_user_is_kept(monkeypatch, capsys):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    config = make_config()
    configure_loggers(config)
    assert os.environ["WANDB_MODE"] == "disabled"
    assert forwarded(config)["WANDB_MODE"] == "disabled"
    assert "W&B disabled" in only_line(capsys)


def test_missing_wandb_package_falls_back_to_the_file_logger(monkeypatch, tmp_path, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a)
    )
    monkeypatch.setenv("WANDB_API_KEY", "k")
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", str(tmp_path / "logs"))
    config = make_config(loggers=("console", "wandb"))
    configure_loggers(config)
    assert list(config.trainer.logger) == ["console", "file"]
    line = only_line(capsys)
    assert "not installed" in line
    assert str(tmp_path / "logs" / "deltal" / "countdown__x__m__seed1.jsonl") in line
    assert forwarded(config) == {"VERL_FILE_LOGGER_ROOT": str(tmp_path / "logs")}


def test_existing_ray_env_vars_are_kept_when_logging_env_is_added(monkeypatch):
    config = make_config(env_vars={"MATH_SERVER_URL": "http://10.0.0.5:6284"})
    configure_loggers(config)
    assert forwarded(config) == {"MATH_SERVER_URL": "http://10.0.0.5:6284", "WANDB_MODE": "offline"}


def test_config_without_ray_kwargs_gets_the_runtime_env_created():
    config = OmegaConf.create({"trainer": {"logger": "wandb", "project_name": "p", "experiment_name": "e"}})
    configure_loggers(config)
    assert list(config.trainer.logger) == ["wandb"]
    assert forwarded(config) == {"WANDB_MODE": "offline"}


def test_console_only_run_leaves_wandb_alone(capsys):
    config = make_config(loggers=("console",))
    configure_loggers(config)
    assert "WANDB_MODE" not in os.environ
    assert list(config.trainer.logger) == ["console"]
    assert "W&B off" in only_line(capsys)


def test_file_log_path_follows_verls_file_logger_rules(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert file_log_path("p", "e") == str(tmp_path / "p" / "e.jsonl")
    monkeypatch.setenv("VERL_FILE_LOGGER_ROOT", "/logs")
    assert file_log_path("p", "e") == "/logs/p/e.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", "/x/metrics.jsonl")
    assert file_log_path("p", "e") == "/x/metrics.jsonl"
