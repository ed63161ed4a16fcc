"""A stand-in for the math server in client tests: real HTTP on loopback, judges numbers by exact value (``0.5`` equals
``1/2``) and anything else by string equality, and counts its calls."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def same_value(prediction: str, ground_truth: str) -> bool:
    try:
        return Fraction(prediction) == Fraction(ground_truth)
    except (ValueError, ZeroDivisionError):
        return prediction == ground_truth


class FakeMathServer:
    """``/verify`` judges with same_value; ``fail_next`` queues HTTP error codes to answer with first;
    ``pool_broken_next`` answers that many calls with every check ``pool_broken`` (a pool that broke mid-request)."""

    def __init__(self, health_status: int = 200):
        self.verify_calls: list[int] = []  # pairs per /verify call, in arrival order
        self.fail_next: list[int] = []
        self.pool_broken_next = 0
        self.health_status = health_status
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._reply(fake.health_status, {"status": "ok" if fake.health_status == 200 else "starting"})

            def do_POST(self):
                pairs = json.loads(self.rfile.read(int(self.headers["content-length"])))["pairs"]
                if fake.fail_next:
                    self._reply(fake.fail_next.pop(0), {"detail": "injected failure"})
                    return
                fake.verify_calls.append(len(pairs))
                if fake.pool_broken_next:
                    fake.pool_broken_next -= 1
                    self._reply(200, {"results": [{"equal": False, "status": "pool_broken"} for _ in pairs]})
                    return
                verdicts = [same_value(pair["prediction"], pair["ground_truth"]) for pair in pairs]
                results = [{"equal": equal, "status": "equal" if equal else "not_equal"} for equal in verdicts]
                self._reply(200, {"results": results})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
