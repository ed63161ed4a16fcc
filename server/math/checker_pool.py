"""A pool of checker processes that bounds every check in time and memory, whatever the input.

Library module of ``server/math``. Layers of defence, innermost first:

1. math-verify's own ``signal.alarm`` timeouts (``inner_timeout_s``), which work because pebble runs each task in its
   worker's main thread;
2. pebble's per-task hard timeout (``hard_timeout_s``, counted from the moment a worker starts the task, so queueing
   never counts): the worker is killed and replaced, the task reports ``timeout``;
3. a crashed worker (C-level abort, OOM kill) fails only its own task (``worker_crashed``), the pool respawns it;
4. ``RLIMIT_AS`` per worker and replacement after ``worker_max_tasks`` tasks;
5. a per-request deadline: checks not finished by then are cancelled (running ones killed) as ``deadline_exceeded``.

Workers come from a forkserver (never forked from the threaded server) that preloads and warms math-verify.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable

import equivalence
import pebble
from server_settings import ServerSettings

logger = logging.getLogger(__name__)

WORKER_CRASHED = "worker_crashed"
DEADLINE_EXCEEDED = "deadline_exceeded"
INTERNAL_ERROR = "internal_error"

# Every status a check can end with; the client treats only "equal" as correct.
STATUSES = (
    equivalence.EQUAL,
    equivalence.NOT_EQUAL,
    equivalence.PARSE_ERROR,
    equivalence.GOLD_PARSE_ERROR,
    equivalence.TIMEOUT,
    equivalence.MEMORY_LIMIT,
    equivalence.TOO_LONG,
    equivalence.GOLD_TOO_LONG,
    WORKER_CRASHED,
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
)


async def _all_done(tasks: list[pebble.ProcessFuture]) -> None:
    """Resolve once every task has finished. One event for the whole batch, instead of an asyncio wrapper per task,
    so that failed tasks leave no never-retrieved exceptions behind."""
    loop = asyncio.get_running_loop()
    all_done = asyncio.Event()
    remaining = len(tasks)

    def on_done(_task: pebble.ProcessFuture) -> None:  # runs in pebble's result thread
        if not loop.is_closed():  # a task that ends while the server shuts down has nobody left to tell
            loop.call_soon_threadsafe(_count_one)

    def _count_one() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            all_done.set()

    if not tasks:
        return
    for task in tasks:
        task.add_done_callback(on_done)
    await all_done.wait()


class CheckerPool:
    """pebble ProcessPool of math-verify workers plus the bookkeeping the HTTP layer reports."""

    def __init__(self, settings: ServerSettings, check: Callable[[str, str, int, int], str] = equivalence.check_pair):
        """``check`` runs in the workers; it must be importable by name there (tests pass fault-injecting ones)."""
        self.settings = settings
        self._check = check
        self.ready = False
        self.status_counts: Counter[str] = Counter()
        self._pool: pebble.ProcessPool | None = None

    def start(self) -> None:
        """Start the forkserver and the worker processes (returns before they are warm; see warm_up)."""
        # The forkserver is a fresh interpreter and (Python < 3.14) ignores this process's sys.path, so a failed
        # preload import would pass silently and leave every worker cold: put this folder on its PYTHONPATH.
        here = os.path.dirname(os.path.abspath(__file__))
        inherited = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = here if not inherited else f"{here}{os.pathsep}{inherited}"
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["worker_preload"])
        self._pool = pebble.ProcessPool(
            max_workers=self.settings.workers,
            max_tasks=self.settings.worker_max_tasks,
            initializer=equivalence.init_worker,
            initargs=(self.settings.worker_memory_mb * 1024 * 1024,),
            context=context,
        )

    async def warm_up(self) -> None:
        """Run trivial checks until every worker has answered once, then mark the pool ready for /health."""
        statuses = await self.check_pairs([("\\frac{1}{2}", "0.5")] * (2 * self.settings.workers), record=False)
        if any(status != equivalence.EQUAL for status in statuses):
            raise RuntimeError(f"checker workers failed their warm-up check (statuses {sorted(set(statuses))})")
        self.ready = True
        logger.info("checker pool ready: %d workers", self.settings.workers)

    @property
    def healthy(self) -> bool:
        return self.ready and self._pool is not None and self._pool.active

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None
        self.ready = False

    async def check_pairs(self, pairs: list[tuple[str, str]], record: bool = True) -> list[str]:
        """Statuses for ``(gold, prediction)`` pairs, in order. Identical pairs are checked once."""
        if self._pool is None:
            raise RuntimeError("checker pool is not started")
        started = time.monotonic()
        unique_pairs = list(dict.fromkeys(pairs))  # RL batches repeat answers: n rollouts often agree
        status_of: dict[tuple[str, str], str] = {}
        scheduled: list[tuple[tuple[str, str], pebble.ProcessFuture]] = []
        limit = self.settings.parse_tail_chars
        for gold, prediction in unique_pairs:
            # Cut here, not in the worker: a too-long answer needs no worker, and a 1 MB string is not shipped.
            gold_region = equivalence.answer_region(gold, limit)
            prediction_region = equivalence.answer_region(prediction, limit)
            if gold_region is None:
                status_of[(gold, prediction)] = equivalence.GOLD_TOO_LONG
            elif prediction_region is None:
                status_of[(gold, prediction)] = equivalence.TOO_LONG
            else:
                task = self._pool.schedule(
                    self._check,
                    args=(gold_region, prediction_region, self.settings.inner_timeout_s, limit),
                    timeout=self.settings.hard_timeout_s,
                )
                scheduled.append(((gold, prediction), task))
        tasks = [task for _, task in scheduled]
        try:
            await asyncio.wait_for(_all_done(tasks), timeout=self.settings.batch_deadline_s)
        except asyncio.TimeoutError:
            pass  # the unfinished checks are cancelled below and reported as deadline_exceeded
        finally:
            # Past the deadline, or the client went away (this coroutine was cancelled): cancelling a pebble future
            # kills the worker running it, so abandoned checks stop burning CPU.
            for task in tasks:
                if not task.done():
                    task.cancel()
        status_of.update((pair, self._status_of(task)) for pair, task in scheduled)
        statuses = [status_of[pair] for pair in pairs]
        if record:
            counts = Counter(statuses)
            self.status_counts.update(counts)
            logger.info(
                "checked %d pairs (%d unique) in %.2fs: %s",
                len(pairs),
                len(unique_pairs),
                time.monotonic() - started,
                dict(sorted(counts.items())),
            )
        return statuses

    @staticmethod
    def _status_of(task: pebble.ProcessFuture) -> str:
        if task.cancelled():
            return DEADLINE_EXCEEDED
        error = task.exception()
        if error is None:
            status = task.result()
            return status if status in STATUSES else INTERNAL_ERROR
        if isinstance(error, concurrent.futures.TimeoutError):
            return equivalence.TIMEOUT
        if isinstance(error, pebble.ProcessExpired):
            return WORKER_CRASHED
        # A bug in check_pair, not bad input: log its type only (the message could quote the answer).
        logger.error("checker task failed with %s", type(error).__name__)
        return INTERNAL_ERROR
