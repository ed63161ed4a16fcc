"""Shared test setup: keep every cache and Ray session inside temporary directories, never under ``~``."""

import os
import shutil
import tempfile
from pathlib import Path

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


# flash-attn installations the one flash-attn check (deltal.attention_kernels) must tell apart: relative path -> text.
FLASH_ATTN_STATES = {
    "missing": {},
    # A build that had no nvcc: the Python package without its compiled extension.
    "no_kernels": {"flash_attn/__init__.py": "__version__ = '2.8.3'\n"},
    # A wheel built for another torch: the extension is there but does not load.
    "broken": {
        "flash_attn/__init__.py": "__version__ = '2.8.3'\n",
        "flash_attn_2_cuda.py": "raise ImportError('flash_attn_2_cuda.so: undefined symbol: _ZN3c104cuda9SetDevice')\n",
    },
    "working": {"flash_attn/__init__.py": "__version__ = '2.8.3'\n", "flash_attn_2_cuda.py": "LOADED = True\n"},
}


@pytest.fixture
def write_flash_attn_state():
    """write(root, state) puts one of FLASH_ATTN_STATES under ``root`` (a folder to put first on sys.path)."""

    def write(root: Path, state: str) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        for relative, text in FLASH_ATTN_STATES[state].items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return root

    return write


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
