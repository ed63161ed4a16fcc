"""The checker pool kills a check that ignores math-verify's alarm at the hard timeout, survives a worker that dies,
cancels what a request's deadline leaves unfinished, and in every case keeps answering the other checks correctly.

Faults are injected with tests/server/pool_faults.py, which the forkserver imports through PYTHONPATH; the pool runs
inside the test process.
"""

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

SERVER_DIR = Path(__file__).resolve().parents[2] / "server" / "math"
sys.path.insert(0, str(SERVER_DIR))

from checker_pool import CheckerPool  # noqa: E402
from pool_faults import check_with_faults  # noqa: E402
from server_settings import ServerSettings  # noqa: E402

EASY = [(str(i), f"{2 * i}/2") for i in range(1, 11)]
SLACK_S = 3.0


@pytest.fixture(scope="module", autouse=True)
def faults_importable_by_workers():
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), previous]))
    yield
    if previous is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = previous


def started_pool(**settings) -> CheckerPool:
    pool = CheckerPool(ServerSettings(workers=2, inner_timeout_s=1, **settings), check=check_with_faults)
    pool.start()
    asyncio.run(pool.warm_up())
    return pool


@pytest.fixture(scope="module")
def pool():
    pool = started_pool(hard_timeout_s=1.5)
    yield pool
    pool.close()


def timed_check(pool: CheckerPool, pairs):
    started = time.monotonic()
    statuses = asyncio.run(pool.check_pairs(pairs))
    return statuses, time.monotonic() - started


def test_a_check_that_ignores_the_alarm_is_killed_at_the_hard_timeout(pool):
    statuses, elapsed = timed_check(pool, [("1", "HANG"), *EASY])
    assert statuses == ["timeout"] + ["equal"] * len(EASY)
    assert elapsed < pool.settings.hard_timeout_s + SLACK_S
    assert pool.healthy
    assert timed_check(pool, EASY)[0] == ["equal"] * len(EASY)


def test_a_worker_that_dies_fails_only_its_own_check(pool):
    statuses, _ = timed_check(pool, [*EASY[:5], ("1", "CRASH"), *EASY[5:]])
    assert statuses == ["equal"] * 5 + ["worker_crashed"] + ["equal"] * 5
    assert timed_check(pool, [("\\frac{1}{2}", "0.5"), ("3", "4")])[0] == ["equal", "not_equal"]


def test_identical_pairs_in_a_batch_get_identical_statuses(pool):
    statuses, _ = timed_check(pool, [("1", "1"), ("2", "3"), ("1", "1"), ("2", "3")])
    assert statuses == ["equal", "not_equal", "equal", "not_equal"]


def test_checks_left_at_the_request_deadline_are_cancelled_and_the_pool_recovers():
    pool = started_pool(hard_timeout_s=30.0, batch_deadline_s=1.0)
    try:
        statuses, elapsed = timed_check(pool, [("1", "HANG"), *EASY])
        assert statuses == ["deadline_exceeded"] + ["equal"] * len(EASY)
        assert elapsed < 1.0 + SLACK_S
        # The hung worker was killed with its cancelled task, so the next batch is not stuck behind it.
        statuses, elapsed = timed_check(pool, EASY)
        assert statuses == ["equal"] * len(EASY)
        assert elapsed < SLACK_S + 1.0
    finally:
        pool.close()
