"""A client that gives up on a slow /verify batch takes its checks with it: the server notices the disconnect and
cancels the batch's pending and running checks, so the next client's check is answered at once instead of queueing
behind 60 checks nobody waits for. Runs against the shared real server process (tests/server/conftest.py)."""

import time

import httpx
import pytest
from math_server_process import INNER_TIMEOUT_S

# Each runs into math-verify's alarm (INNER_TIMEOUT_S); distinct, so the batch's deduplication keeps all of them.
SLOW = [f"$9^{{9^{{9^{{{9 + i}}}}}}}$" for i in range(60)]
WORKERS = 2


def test_an_abandoned_batch_does_not_delay_the_next_client(math_server):
    pairs = [{"prediction": prediction, "ground_truth": "5"} for prediction in SLOW]
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{math_server.url}/verify", json={"pairs": pairs}, timeout=1.0)

    started = time.monotonic()
    response = httpx.post(
        f"{math_server.url}/verify", json={"pairs": [{"prediction": "0.5", "ground_truth": "1/2"}]}, timeout=60
    )
    elapsed = time.monotonic() - started
    assert response.json()["results"] == [{"equal": True, "status": "equal"}]
    # Queued behind the abandoned batch this takes ~(60 x 1 s) / 2 workers = 30 s; cancelled, only the respawn of the
    # two killed workers remains (seconds under heavy load).
    abandoned_s = len(SLOW) * INNER_TIMEOUT_S / WORKERS
    assert elapsed < abandoned_s / 3, f"the next check waited {elapsed:.1f}s behind an abandoned batch"
