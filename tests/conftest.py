"""Shared test setup: keep every cache and Ray session inside temporary directories, never under ``~``."""

import os
import shutil
import tempfile

import pytest

# Set before anything imports datasets/transformers/ray in this process or its children.
_CACHE_ROOT = tempfile.mkdtemp(prefix="deltal-test-cache-")
os.environ.setdefault("HF_HOME", os.path.join(_CACHE_ROOT, "hf"))
os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(_CACHE_ROOT, "hf", "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def ray_tmp_dir():
    """A short directory for Ray's session files: its UNIX socket paths must stay under 107 bytes."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA; without it they are skipped with a reason, never failed."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
