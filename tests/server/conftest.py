"""Server tests share one real server process per module (starting one costs a few seconds)."""

import pytest
from math_server_process import PATIENT_HARD_TIMEOUT_S, PATIENT_INNER_TIMEOUT_S, MathServerProcess


def serve(log_path, **extra_env):
    server = MathServerProcess(log_path, **extra_env)
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def math_server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("math-server") / "server.log")


@pytest.fixture(scope="module")
def patient_math_server(tmp_path_factory):
    """A server whose alarms are far from any honest check's time, for tests of verdicts rather than of time bounds:
    on a loaded 2-core box a worker's first check of a kind (sympy warming up) has taken over the 1 s alarm."""
    yield from serve(
        tmp_path_factory.mktemp("patient-math-server") / "server.log",
        MATH_SERVER_INNER_TIMEOUT=str(PATIENT_INNER_TIMEOUT_S),
        MATH_SERVER_TIMEOUT=str(PATIENT_HARD_TIMEOUT_S),
    )
