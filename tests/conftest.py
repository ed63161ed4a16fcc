"""Shared test setup: every cache and Ray session inside temporary directories (never under ``~``), and the one
training run the end-to-end tests share (tests/shared_run.py), started in the background when one of them is
selected."""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from shared_run import FOLDER_VARIABLE, SharedRun

# Set before anything imports datasets/transformers/ray in this process or its children.
_CACHE_ROOT = tempfile.mkdtemp(prefix="deltal-test-cache-")
os.environ.setdefault("HF_HOME", os.path.join(_CACHE_ROOT, "hf"))
os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(_CACHE_ROOT, "hf", "datasets"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    """The quickstart's tiny model and tokenizer (seed 0), built once per session for every test that only reads it."""
    from deltal.cpu.assets import build_tiny_assets

    return build_tiny_assets(tmp_path_factory.mktemp("cpu_assets") / "tiny", seed=0)


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


def is_controller(config) -> bool:
    """True in the process that runs the session (pytest-xdist's controller, or pytest alone), not in a worker."""
    return not hasattr(config, "workerinput")


# A worker per usable CPU, at most this many: each imports torch and a few start Ray clusters, and the suite has
# too few slow tests to keep more busy.
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int:
    return min(len(os.sched_getaffinity(0)), MAX_WORKERS)


def pytest_configure(config):
    if is_controller(config):
        # Workers inherit the environment when they start, after this.
        os.environ[FOLDER_VARIABLE] = tempfile.mkdtemp(prefix="deltal-shared-run-")


def shared_run() -> SharedRun:
    return SharedRun(Path(os.environ[FOLDER_VARIABLE]))


def pytest_sessionfinish(session, exitstatus):
    if is_controller(session.config):
        shared_run().stop()
        shutil.rmtree(os.environ[FOLDER_VARIABLE], ignore_errors=True)
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA; without it they are skipped with a reason, never failed. The shared run starts
    now if a selected test reads it."""
    import torch

    if not config.option.collectonly and any("compare_delta_l_run" in item.fixturenames for item in items):
        shared_run().start("deltal.experiments.compare", shared_compare_experiment().args("--methods", "delta_l"))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Compare's tiny experiment (tests/experiments): 1 seed x 2 steps of a barely warm-started tiny model.
TINY_COMPARE = [
    "--seeds", "0", "--steps", "2", "--prompts", "2", "--n", "2", "--max-response-length", "32",
    "--test-freq", "2", "--val-size", "4", "--train-size", "16", "--test-size", "4",
    "--warm-steps", "1", "--warm-pool", "64",
]  # fmt: skip


@dataclass(frozen=True)
class CompareExperiment:
    """A compare experiment whose runs also keep verl's checkpoint of step 2, one folder per run name."""

    out: Path
    cache: Path
    checkpoints: Path

    def args(self, *options: str) -> list[str]:
        """``deltal.experiments.compare`` arguments: the experiment's, ``options``, then its hydra overrides."""
        run_checkpoints = f"trainer.default_local_dir={self.checkpoints}/${{trainer.experiment_name}}"
        return ["--out", str(self.out), "--cache", str(self.cache), *TINY_COMPARE, *options, "--"] + [
            "trainer.save_freq=2",
            run_checkpoints,
        ]


def shared_compare_experiment() -> CompareExperiment:
    root = Path(os.environ[FOLDER_VARIABLE]) / "compare"
    return CompareExperiment(out=root / "out", cache=root / "cache", checkpoints=root / "checkpoints")


@pytest.fixture(scope="session")
def compare_delta_l_run() -> CompareExperiment:
    """The one delta_l training run of the suite's end-to-end tests, trained once per session.

    ``deltal.experiments.compare`` trains it (``python -m deltal.train backend=cpu method=delta_l``, 2 steps, with
    validation before training and a checkpoint at step 2), in the background from the start of the session
    (tests/shared_run.py). Its tests check different things of this same run: tests/experiments the experiment tool
    (resume, tables, figures; it adds a second method), tests/e2e the trainer (ΔL metrics of each step, the
    checkpoint, and a resume from it). A pipeline launch costs about a minute of start-up on 2 cores, so sharing it
    keeps the suite short.
    """
    run = shared_run()
    assert run.started(), "the shared run starts when a test that reads it is collected"
    run.wait()
    return shared_compare_experiment()
