"""Fixtures shared by the preflight tests: a ready CountDown run on local files and a stand-in for verl's plugin."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from deltal.data.rl_format import raw_prompt_messages, rl_row, write_parquet


def _write_rows(path: Path, data_source: str, n: int = 3) -> str:
    rows = [
        rl_row(data_source, raw_prompt_messages(f"question {i}"), "test", ground_truth=str(i), split="train", index=i)
        for i in range(n)
    ]
    return str(write_parquet(rows, path))


@pytest.fixture
def write_rows() -> Callable[..., str]:
    """Writes a small deltal parquet file of one data source and returns its path."""
    return _write_rows


@pytest.fixture
def model_dir(tmp_path) -> str:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    return str(folder)


@pytest.fixture
def countdown_config(tmp_path, model_dir):
    train = _write_rows(tmp_path / "countdown" / "train.parquet", "countdown")
    test = _write_rows(tmp_path / "countdown" / "test.parquet", "countdown")
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
