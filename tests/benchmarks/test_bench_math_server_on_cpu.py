"""The math-server benchmark leaves no process behind: stopping its reference server also ends the pool workers that
server forked, even though they outlive it and were forked with uvicorn's SIGTERM handler."""

import importlib.util
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_math_server.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_math_server", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def descendants(pid: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_stopping_the_reference_server_ends_its_pool_workers(bench):
    port = bench.free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(BENCH), "--serve-reference", str(port), "--workers", "2"]
    server = bench.start(command, dict(os.environ), url)
    try:
        response = httpx.post(f"{url}/is_equal", json={"str1": "1", "str2": "1"}, timeout=60)
        assert response.json()["status"] == "equal"
        workers = descendants(server.pid)
        assert workers, "the reference server forked no pool workers"
    finally:
        bench.stop(server)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if alive(pid)], "pool workers outlived the benchmark's reference server"


def test_stop_kills_group_members_that_ignore_sigterm_after_the_leader_exits(bench, tmp_path):
    ready = tmp_path / "ready"
    child = f"import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); pathlib.Path({str(ready)!r}).touch(); time.sleep(600)"  # noqa: E501
    leader = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(600)"
    process = bench.subprocess.Popen([sys.executable, "-c", leader], start_new_session=True)
    bench._started.append(process)
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    (orphan,) = descendants(process.pid)
    try:
        bench.stop(process)
        time.sleep(0.5)
        assert not alive(orphan)
        assert process not in bench._started
    finally:
        if alive(orphan):
            os.kill(orphan, signal.SIGKILL)
