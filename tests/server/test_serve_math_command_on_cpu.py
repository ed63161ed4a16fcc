"""`deltal serve-math` starts the checkout's real math server (it answers /is_equal), and stops with the fix
when the package has no checkout beside it."""

import sys

import httpx
from math_server_process import MathServerProcess

from deltal.rewards import serve_math


def test_serve_math_runs_the_checkout_server_which_answers(tmp_path):
    server = MathServerProcess(tmp_path / "server.log", command=(sys.executable, "-m", "deltal", "serve-math"))
    try:
        server.wait_healthy()
        reply = httpx.post(f"{server.url}/is_equal", json={"str1": "0.5", "str2": "\\frac{1}{2}"}, timeout=30)
        assert reply.status_code == 200
        assert reply.json()["equal"] is True
    finally:
        server.stop()


def test_serve_math_without_a_checkout_exits_2_naming_the_fix(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(serve_math, "START_SCRIPT", tmp_path / "server" / "math" / "start.sh")
    assert serve_math.main([]) == 2
    assert "bash setup.sh" in capsys.readouterr().err


def test_serve_math_help_describes_the_command(capsys):
    assert serve_math.main(["--help"]) == 0
    assert "deltal serve-math" in capsys.readouterr().out
