"""Server tests share one real server process per module (starting one costs a few seconds)."""

import pytest
from math_server_process import MathServerProcess


@pytest.fixture(scope="module")
def math_server(tmp_path_factory):
    server = MathServerProcess(tmp_path_factory.mktemp("math-server") / "server.log")
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()
