"""A pool of checker processes that bounds every check in time and memory, whatever the input.

Library module of ``server/math``. Pairs the fast path (fast_path.py) can decide exactly as math-verify would never
reach a worker; the others pass these layers of defence, innermost first:

1. math-verify's own ``signal.alarm`` timeouts (``inner_timeout_s``), which work because pebble runs each task in its
   worker's main thread;
2. pebble's per-task hard timeout (``hard_timeout_s``, counted from the moment a worker starts the task, so queueing
   never counts): the worker is killed and replaced, the task reports ``timeout``;
3. a crashed worker (C-level abort, OOM kill) fails only its own task (``worker_crashed``), the pool respawns it;
4. ``RLIMIT_AS`` per worker and replacement after ``worker_max_tasks`` tasks;
5. a per-request deadline: checks not finished by then are cancelled (running ones killed) as ``deadline_exceeded``;
6. a broken pool (its forkserver killed, a pebble thread dead) is detected by :meth:`CheckerPool.watch`, its checks
   answered ``pool_broken``, and the pool rebuilt; the process exits non-zero when rebuilding keeps failing, so that
   a supervisor restarts it.

Workers come from a forkserver (never forked from the threaded server) that preloads and warms math-verify; each
worker dies with the forkserver (``equivalence.init_worker``), so a killed forkserver leaves no orphans.
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
import fast_path
import pebble
from server_settings import ServerSettings

logger = logging.getLogger(__name__)

WORKER_CRASHED = "worker_crashed"
DEADLINE_EXCEEDED = "deadline_exceeded"
INTERNAL_ERROR = "internal_error"
POOL_BROKEN = "pool_broken"

WATCH_INTERVAL_S = 0.5
WARM_UP_DEADLINE_S = 300.0
MAX_FAILED_REBUILDS = 3  # then exit non-zero: something outside the pool is wrong, a supervisor should restart us

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
    POOL_BROKEN,
    DEADLINE_EXCEEDED,
    INTERNAL_ERROR,
)


class PoolBroken(RuntimeError):
    """The pool cannot take checks now (it broke and is being rebuilt); ``reason`` says why."""


class CheckerPool:
    """pebble ProcessPool of math-verify workers plus the bookkeeping the HTTP layer reports."""

    def __init__(self, settings: ServerSettings, check: Callable[[str, str, int, int], str] = equivalence.check_pair):
        """``check`` runs in the workers; it must be importable by name there (tests pass fault-injecting ones)."""
        self.settings = settings
        self._check = check
        self.ready = False
        self.broken_reason: str | None = None  # set from the moment the pool is found broken until it is rebuilt
        self.status_counts: Counter[str] = Counter()
        self.fast_path_decided = 0  # unique pairs answered by fast_path.decide, without a worker
        self._pool: pebble.ProcessPool | None = None
        self._in_flight: set[pebble.ProcessFuture] = set()
        self._abandoned: set[pebble.ProcessFuture] = set()  # cancelled because the pool broke under them
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

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
        # Distinct pairs (identical ones are checked once); no request deadline: a loaded machine may take its time.
        warm_up_pairs = [
            (f"\\frac{{{index}}}{{2}}", str(index / 2)) for index in range(1, 2 * self.settings.workers + 1)
        ]
        # The fast path would answer these without a worker: they must reach the workers.
        statuses = await self._run(warm_up_pairs, record=False, deadline_s=WARM_UP_DEADLINE_S, fast=False)
        if any(status != equivalence.EQUAL for status in statuses):
            raise RuntimeError(f"checker workers failed their warm-up check (statuses {sorted(set(statuses))})")
        self.ready = True
        logger.info("checker pool ready: %d workers", self.settings.workers)

    @property
    def healthy(self) -> bool:
        return self.ready and self.broken_reason is None and self._pool is not None and self._pool.active

    async def watch(self) -> None:
        """Run for the server's lifetime: rebuild the pool whenever it breaks (pebble marks it so when its forkserver
        dies or one of its threads fails); exit the process after MAX_FAILED_REBUILDS failed rebuilds in a row."""
        failures = 0
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.broken_reason is None and (self._pool is None or self._pool.active):
                continue
            self._mark_broken(self.broken_reason or "pebble marked it failed: its forkserver or a worker was lost")
            try:
                await self._rebuild()
                failures = 0
            except Exception as error:  # noqa: BLE001 - any failure to rebuild counts; the next round retries
                failures += 1
                logger.error("rebuilding the checker pool failed (%d of %d): %r", failures, MAX_FAILED_REBUILDS, error)
                if failures >= MAX_FAILED_REBUILDS:
                    logger.critical("giving up on the checker pool; exiting so that a supervisor restarts the server")
                    logging.shutdown()
                    os._exit(3)

    def _mark_broken(self, reason: str) -> None:
        if self.broken_reason is None:
            logger.error("checker pool broken: %s; answering its checks %s and rebuilding it", reason, POOL_BROKEN)
        self.broken_reason = reason
        for task in list(self._in_flight):
            self._abandoned.add(task)
            task.cancel()

    async def _rebuild(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            # stop() joins pebble's threads: keep the event loop free meanwhile.
            await asyncio.to_thread(_stop_quietly, old)
        self.start()  # multiprocessing relaunches a dead forkserver for the new pool's first worker
        await self.warm_up()
        self.broken_reason = None
        logger.info("checker pool rebuilt")

    def close(self) -> None:
        if self._pool is not None:
            _stop_quietly(self._pool)
            self._pool = None
        self.ready = False

    async def check_pairs(self, pairs: list[tuple[str, str]], record: bool = True) -> list[str]:
        """Statuses for ``(gold, prediction)`` pairs, in order. Identical pairs are checked once. Raises PoolBroken
        while the pool is being rebuilt (the HTTP layer answers 503, and clients retry)."""
        if self.broken_reason is not None:
            raise PoolBroken(self.broken_reason)
        return await self._run(pairs, record)

    async def _run(
        self, pairs: list[tuple[str, str]], record: bool, deadline_s: float | None = None, fast: bool = True
    ) -> list[str]:
        if self._pool is None:
            raise RuntimeError("checker pool is not started")
        started = time.monotonic()
        unique_pairs = list(dict.fromkeys(pairs))  # RL batches repeat answers: n rollouts often agree
        status_of: dict[tuple[str, str], str] = {}
        checks: dict[tuple[str, str], asyncio.Task[str]] = {}
        limit = self.settings.parse_tail_chars
        for gold, prediction in unique_pairs:
            # Cut here, not in the worker: a too-long answer needs no worker, and a 1 MB string is not shipped.
            gold_region = equivalence.answer_region(gold, limit)
            prediction_region = equivalence.answer_region(prediction, limit)
            if gold_region is None:
                status_of[(gold, prediction)] = equivalence.GOLD_TOO_LONG
            elif prediction_region is None:
                status_of[(gold, prediction)] = equivalence.TOO_LONG
            elif fast and (verdict := fast_path.decide(gold_region, prediction_region)) is not None:
                status_of[(gold, prediction)] = verdict
                self.fast_path_decided += record
            else:
                checks[(gold, prediction)] = asyncio.ensure_future(self._check_one(gold_region, prediction_region))
        try:
            if checks:
                await asyncio.wait(checks.values(), timeout=deadline_s or self.settings.batch_deadline_s)
        finally:
            # Past the deadline, or the client went away (this coroutine was cancelled): checks still waiting for a
            # slot just end, and cancelling a running one kills its worker, so abandoned checks stop burning CPU.
            unfinished = [check for check in checks.values() if not check.done()]
            for check in unfinished:
                check.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
        status_of.update(
            (pair, DEADLINE_EXCEEDED if check.cancelled() else check.result()) for pair, check in checks.items()
        )
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

    def _dispatch_slots(self) -> asyncio.Semaphore:
        # Bound what pebble holds: it pipes every scheduled task to the workers at once, and a task cancelled after
        # that still starts in a worker, which is then killed for it. Twice the workers keeps each one fed.
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:  # tests drive the pool from several event loops
            self._slots = (loop, asyncio.Semaphore(2 * self.settings.workers))
        return self._slots[1]

    async def _check_one(self, gold: str, prediction: str) -> str:
        """One check on a worker, once a dispatch slot is free; its status."""
        async with self._dispatch_slots():
            if self._pool is None:  # between a broken pool and its replacement
                return POOL_BROKEN
            try:
                task = self._pool.schedule(
                    self._check,
                    args=(gold, prediction, self.settings.inner_timeout_s, self.settings.parse_tail_chars),
                    timeout=self.settings.hard_timeout_s,
                )
            except RuntimeError as error:  # pebble refuses work once the pool is in its error state
                self._mark_broken(f"the checker pool refused a check ({error})")
                return POOL_BROKEN
            self._in_flight.add(task)
            try:
                await asyncio.wrap_future(task)
            except asyncio.CancelledError:
                if task not in self._abandoned or asyncio.current_task().cancelling():
                    task.cancel()  # kills the worker running it
                    raise
            except BaseException:  # noqa: BLE001 - every outcome is read from the task itself below
                pass
            finally:
                self._in_flight.discard(task)
            status = self._status_of(task)
            self._abandoned.discard(task)
            return status

    def _status_of(self, task: pebble.ProcessFuture) -> str:
        if task.cancelled():
            return POOL_BROKEN if task in self._abandoned else DEADLINE_EXCEEDED
        error = task.exception()
        if error is None:
            status = task.result()
            return status if status in STATUSES else INTERNAL_ERROR
        if isinstance(error, concurrent.futures.TimeoutError):
            return equivalence.TIMEOUT
        if isinstance(error, pebble.ProcessExpired):
            return WORKER_CRASHED
        if isinstance(error, concurrent.futures.BrokenExecutor):  # pebble aborts a broken pool's tasks with this
            self._mark_broken(f"the checker pool broke ({type(error).__name__})")
            return POOL_BROKEN
        # A bug in check_pair, not bad input: log its type only (the message could quote the answer).
        logger.error("checker task failed with %s", type(error).__name__)
        return INTERNAL_ERROR


def _stop_quietly(pool: pebble.ProcessPool) -> None:
    """Stop a pool and its workers; a pool that already broke may fail while stopping, which changes nothing."""
    try:
        pool.stop()
        pool.join(timeout=10)
    except Exception as error:  # noqa: BLE001 - the pool is being discarded either way
        logger.warning("stopping the old checker pool: %r", error)
