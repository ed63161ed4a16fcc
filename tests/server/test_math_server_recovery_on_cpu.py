"""A math server whose checker pool breaks (its forkserver killed with SIGKILL) says so on /health (503, status
"broken", with the reason), answers checks with 503 rather than a plain-text 500 while it rebuilds, leaves no orphaned
workers, and comes back healthy and correct on its own. Runs its own real server process (stopped also on failure)."""

import os
import signal
import time

import httpx
import pytest
from math_server_process import MathServerProcess, child_pids, is_running


@pytest.fixture
def own_server(tmp_path):
    server = MathServerProcess(tmp_path / "server.log")
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def test_a_killed_forkserver_is_reported_then_rebuilt_without_orphans(own_server):
    forkserver = own_server.forkserver_pid()
    workers = child_pids(forkserver)
    assert len(workers) == 2
    os.kill(forkserver, signal.SIGKILL)

    seen_broken = None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        health = httpx.get(f"{own_server.url}/health", timeout=5)
        if health.json()["status"] == "broken":
            assert health.status_code == 503 and health.json()["reason"]
            response = httpx.post(
                f"{own_server.url}/verify", json={"pairs": [{"prediction": "1", "ground_truth": "1"}]}, timeout=30
            )
            seen_broken = seen_broken or response
        elif health.status_code == 200 and seen_broken is not None:
            break
        time.sleep(0.1)
    assert seen_broken is not None, "/health never said broken"
    assert seen_broken.status_code in (200, 503)  # 200 only if the rebuild finished between the two requests
    if seen_broken.status_code == 503:
        assert "rebuilt" in seen_broken.json()["detail"]
    assert httpx.get(f"{own_server.url}/health", timeout=5).json()["status"] == "ok"

    response = httpx.post(
        f"{own_server.url}/verify",
        json={
            "pairs": [{"prediction": "0.5", "ground_truth": "\\frac{1}{2}"}, {"prediction": "3", "ground_truth": "4"}]
        },
        timeout=30,
    )
    assert [result["status"] for result in response.json()["results"]] == ["equal", "not_equal"]
    assert not [pid for pid in workers if is_running(pid)], "the old workers outlived their forkserver"
    assert own_server.forkserver_pid() != forkserver
