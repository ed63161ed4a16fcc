"""Helpers shared by the server tests: start ``server/math/start.sh`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_SH = REPO / "server" / "math" / "start.sh"

# Short timeouts keep the adversarial tests fast: math-verify's alarm at 1 s, the hard kill at 3 s.
INNER_TIMEOUT_S = 1
HARD_TIMEOUT_S = 3.0
MAX_BODY_BYTES = 4 * 1024 * 1024
BODY_TIMEOUT_S = 3.0
# The verdict tables' server: alarms no honest check reaches even on a loaded box.
PATIENT_INNER_TIMEOUT_S = 20
PATIENT_HARD_TIMEOUT_S = 30.0


def child_pids(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MathServerProcess:
    """One server started through start.sh or a command that execs it (2 workers), stopped with its process group."""

    def __init__(self, log_path: Path, command: tuple[str, ...] = ("bash", str(START_SH)), **extra_env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHON": sys.executable,
            "MATH_SERVER_PORT": str(self.port),
            "MATH_SERVER_WORKERS": "2",
            "MATH_SERVER_TIMEOUT": str(HARD_TIMEOUT_S),
            "MATH_SERVER_INNER_TIMEOUT": str(INNER_TIMEOUT_S),
            "MATH_SERVER_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "MATH_SERVER_BODY_TIMEOUT": str(BODY_TIMEOUT_S),
            "MATH_SERVER_LOG_LEVEL": "warning",
            **extra_env,
        }
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            list(command), env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"math server exited with {self.process.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"math server not healthy after {timeout_s}s: {self.log_path.read_text()}")

    def forkserver_pid(self) -> int:
        """The checker pool's forkserver: the server's child whose command line names it."""
        for pid in child_pids(self.process.pid):  # start.sh execs uvicorn, so this pid is the server's
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        raise RuntimeError("the math server has no forkserver child")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the group holds uvicorn, the forkserver and its workers
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
