"""The machine facts printed with every CPU benchmark figure, and the core count the CPU backend's threads follow.

Properties: hyperthread siblings count as one physical core; a cgroup v1 or v2 CPU quota is read as a number of
CPUs and "unlimited" as none; the core count never exceeds the quota nor falls below 1; the facts name the CPU, its
cores, the quota, Ray's and torch's view and the Python build, and ``bench_cpu_step.py`` prints them first.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from deltal.config import cores
from deltal.config.cores import cgroup_cpu_limit, cores_of, physical_cores

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _topology(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, listed in siblings.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(listed + "\n")
    return root


def test_hyperthread_siblings_count_as_one_core(tmp_path):
    two_cores = _topology(tmp_path / "a", {0: "0", 1: "1"})
    one_core_two_threads = _topology(tmp_path / "b", {0: "0-1", 1: "0-1"})
    assert cores_of({0, 1}, two_cores) == 2
    assert cores_of({0, 1}, one_core_two_threads) == 1
    assert cores_of({0}, one_core_two_threads) == 1
    assert cores_of({0, 1}, tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("proc_cgroup", "files", "expected"),
    [
        ("0::/job\n", {"job/cpu.max": "150000 100000\n"}, 1.5),
        ("0::/job\n", {"job/cpu.max": "max 100000\n"}, None),
        (
            "3:cpu,cpuacct:/box\n",
            {"cpu/box/cpu.cfs_quota_us": "200000\n", "cpu/box/cpu.cfs_period_us": "100000\n"},
            2.0,
        ),
        ("3:cpu,cpuacct:/box\n", {"cpu/box/cpu.cfs_quota_us": "-1\n", "cpu/box/cpu.cfs_period_us": "100000\n"}, None),
        ("4:memory:/box\n", {}, None),
    ],
)
def test_cgroup_quota_in_cpus(tmp_path, proc_cgroup, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(proc_cgroup, tmp_path) == expected


def test_core_count_is_capped_by_the_quota_and_at_least_one(monkeypatch):
    monkeypatch.setattr(cores, "cores_of", lambda cpus: 8)
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: None)
    assert physical_cores() == 8
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: 2.5)
    assert physical_cores() == 2
    monkeypatch.setattr(cores, "cgroup_cpu_limit", lambda: 0.5)
    assert physical_cores() == 1


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_facts_name_what_a_figure_depends_on():
    facts = _load("machine_facts").machine_facts()
    cores_seen = cores_of(os.sched_getaffinity(0))
    assert f"physical cores among them {cores_seen}," in facts["cpus"] and "Ray sees" in facts["cpus"]
    assert "PGO" in facts["python"] and "intra-op threads" in facts["torch"] and facts["cpu"]


def test_bench_prints_the_facts_first_and_the_workers_settings_with_each_run(monkeypatch, capsys, tmp_path):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the bench imports machine_facts from its own folder
    bench = _load("bench_cpu_step")
    run = {
        "start": 30.0,
        "total": 60.0,
        "walls": {2: 3.0, 3: 3.1, 4: 2.9},
        "records": {step: {"timing_s/step": 2.9, "timing_s/gen": 1.0} for step in (1, 2, 3, 4)},
        "cpu": {"ray::WorkerDict": 1.5},
        "startup_cpu": {"ray::WorkerDict": 6.0},
        "worker": "nice 15, CPUs [0, 1], OMP_NUM_THREADS=2",
    }
    monkeypatch.setattr(bench, "run_once", lambda overrides, steps, skip, timeout_s: run)
    argv = ["bench_cpu_step.py", "--no-calibration", "--steps", "4", "--skip", "1", "--json", str(tmp_path / "o.json")]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    out = capsys.readouterr().out
    assert out.index("vector units") < out.index("load before") < out.index("FSDP worker: nice 15")
    assert "OMP_NUM_THREADS=2" in out and "cpu ray::WorkerDict" in out
    written = json.loads((tmp_path / "o.json").read_text())
    assert written["machine"]["cpus"].startswith("os.cpu_count") and written["medians"]["quickstart"]["wall"] == 3.0
