"""HTTP client of the LaTeX-equivalence server (``server/math``) and the micro-batcher that turns many concurrent
single-answer requests into few ``/verify`` calls.

Library module (used by ``deltal.rewards.math`` and the launch preflight). The server's address comes from
``MATH_SERVER_URL`` (default ``http://127.0.0.1:6284``). Other knobs, all optional:
``MATH_CLIENT_RETRIES`` (4), ``MATH_CLIENT_BACKOFF_S`` (0.5, doubled per retry), ``MATH_CLIENT_TIMEOUT_S`` (600, one
request), ``MATH_CLIENT_BATCH_WINDOW_MS`` (20), ``MATH_CLIENT_MAX_BATCH`` (512), ``MATH_CLIENT_MAX_IN_FLIGHT`` (4).

Why a micro-batcher: verl 0.9.1 scores every response on its own (the agent loop sends each finished sample to a
reward-loop worker; ``RewardLoopWorker.compute_score_batch`` also fans out one ``run_single`` per sample), so batching
can only happen by coalescing the calls that are in flight at the same time inside one process. Callers submit one
pair and get a future; a dispatcher thread collects pairs for up to ``window`` after the first arrives (or until
``max_batch``), sends them as one ``/verify`` request, and resolves the futures. While ``max_in_flight`` requests are
outstanding, new pairs keep accumulating, so the batch size adapts to the load.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Sequence

import httpx

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:6284"
POOL_BROKEN = "pool_broken"  # the server's status for checks lost when its checker pool broke (it rebuilds it)
START_HINT = "start it with `bash server/math/start.sh` (or point MATH_SERVER_URL at a running server)"


def server_url(url: str | None = None) -> str:
    """The server address: ``url`` if given, else ``MATH_SERVER_URL``, else the default loopback port."""
    return (url or os.environ.get("MATH_SERVER_URL") or DEFAULT_URL).rstrip("/")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; unset it or give one") from None


def check_server_health(url: str | None = None, timeout: float = 5.0) -> None:
    """Raise RuntimeError (saying how to start the server) unless ``GET /health`` answers 200 with status ok."""
    url = server_url(url)
    try:
        response = httpx.get(f"{url}/health", timeout=timeout)
    except httpx.HTTPError as error:
        raise RuntimeError(
            f"the math verification server at {url} is unreachable ({type(error).__name__}); {START_HINT}"
        ) from error
    if response.status_code == 503:
        raise RuntimeError(f"the math verification server at {url} is still starting its workers; retry in a minute")
    try:
        healthy = response.status_code == 200 and response.json().get("status") == "ok"
    except ValueError:
        healthy = False
    if not healthy:
        raise RuntimeError(
            f"{url}/health answered HTTP {response.status_code}, not deltal's math server saying ok; "
            f"check MATH_SERVER_URL or {START_HINT}"
        )


class MathServerClient:
    """Synchronous ``/verify`` calls with bounded retries; raises RuntimeError naming the fix when they run out."""

    def __init__(
        self,
        url: str | None = None,
        retries: int | None = None,
        backoff_s: float | None = None,
        timeout_s: float | None = None,
    ):
        self.url = server_url(url)
        self.retries = int(retries if retries is not None else _env_float("MATH_CLIENT_RETRIES", 4))
        self.backoff_s = backoff_s if backoff_s is not None else _env_float("MATH_CLIENT_BACKOFF_S", 0.5)
        self.timeout_s = timeout_s if timeout_s is not None else _env_float("MATH_CLIENT_TIMEOUT_S", 600.0)
        self._http = httpx.Client(timeout=self.timeout_s)

    def _log_retry(self, error: str, attempt: int) -> None:
        logger.warning("math server %s: %s (attempt %d of %d)", self.url, error, attempt + 1, self.retries + 1)

    def verify(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """Statuses (``"equal"``, ``"not_equal"``, ...) for ``(prediction, ground_truth)`` pairs, in order."""
        payload = {"pairs": [{"prediction": pred, "ground_truth": gold} for pred, gold in pairs]}
        last_error = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.post(f"{self.url}/verify", json=payload)
            except httpx.HTTPError as error:  # refused, reset, timed out: the server may be restarting
                last_error = type(error).__name__
                self._log_retry(last_error, attempt)
                continue
            if response.status_code >= 500:
                last_error = f"HTTP {response.status_code}"
                self._log_retry(last_error, attempt)
                continue
            if response.status_code != 200:
                # 4xx: this request is wrong and would be wrong again; say what the server objected to.
                raise RuntimeError(
                    f"the math server at {self.url} rejected a /verify request of {len(pairs)} pairs with HTTP "
                    f"{response.status_code}: {response.text[:500]}"
                )
            results = response.json()["results"]
            if len(results) != len(pairs):
                raise RuntimeError(f"{self.url}/verify returned {len(results)} results for {len(pairs)} pairs")
            statuses = [result["status"] for result in results]
            if POOL_BROKEN in statuses and attempt < self.retries:
                # The server's checker pool broke under these checks and is rebuilding itself: ask again.
                last_error = POOL_BROKEN
                self._log_retry(last_error, attempt)
                continue
            return statuses
        raise RuntimeError(
            f"the math verification server at {self.url} did not answer after {self.retries + 1} attempts "
            f"(last error: {last_error}); {START_HINT}. Rewards are not computed without it."
        )


class VerifyBatcher:
    """Coalesces concurrent ``submit`` calls (from any threads or event loops) into batched ``/verify`` requests."""

    def __init__(
        self,
        client: MathServerClient,
        window_s: float | None = None,
        max_batch: int | None = None,
        max_in_flight: int | None = None,
    ):
        self.client = client
        self.window_s = window_s if window_s is not None else _env_float("MATH_CLIENT_BATCH_WINDOW_MS", 20.0) / 1e3
        self.max_batch = int(max_batch if max_batch is not None else _env_float("MATH_CLIENT_MAX_BATCH", 512))
        in_flight = int(max_in_flight if max_in_flight is not None else _env_float("MATH_CLIENT_MAX_IN_FLIGHT", 4))
        self._slots = threading.BoundedSemaphore(in_flight)
        self._senders = concurrent.futures.ThreadPoolExecutor(in_flight, thread_name_prefix="math-verify")
        self._pending: list[tuple[str, str, concurrent.futures.Future]] = []
        self._first_arrival = 0.0
        self._wakeup = threading.Condition()
        self.requests_sent = 0  # for logs and tests: how many /verify calls this batcher made
        threading.Thread(target=self._dispatch_forever, name="math-verify-dispatch", daemon=True).start()

    def submit(self, prediction: str, ground_truth: str) -> concurrent.futures.Future:
        """Queue one pair; the future resolves to its status string, or raises the client's RuntimeError."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._wakeup:
            if not self._pending:
                self._first_arrival = time.monotonic()
            self._pending.append((prediction, ground_truth, future))
            self._wakeup.notify()
        return future

    def _dispatch_forever(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending:
                    self._wakeup.wait()
                send_at = self._first_arrival + self.window_s
                while len(self._pending) < self.max_batch and (remaining := send_at - time.monotonic()) > 0:
                    self._wakeup.wait(remaining)
            # Wait for a free request slot outside the lock, so submitters never block; pairs keep piling up.
            self._slots.acquire()
            with self._wakeup:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if self._pending:
                    self._first_arrival = time.monotonic()
            self.requests_sent += 1
            self._senders.submit(self._send, batch)

    def _send(self, batch: list[tuple[str, str, concurrent.futures.Future]]) -> None:
        try:
            statuses = self.client.verify([(pred, gold) for pred, gold, _ in batch])
        except BaseException as error:  # noqa: BLE001 - handed to every waiting caller, who re-raises it
            for _, _, future in batch:
                future.set_exception(error)
        else:
            for (_, _, future), status in zip(batch, statuses, strict=True):
                future.set_result(status)
        finally:
            self._slots.release()


_batchers: dict[tuple[int, str], VerifyBatcher] = {}
_batchers_lock = threading.Lock()


def shared_batcher(url: str | None = None) -> VerifyBatcher:
    """The batcher of this process for the server at ``url`` (threads do not survive fork: one per pid)."""
    key = (os.getpid(), server_url(url))
    with _batchers_lock:
        if key not in _batchers:
            _batchers[key] = VerifyBatcher(MathServerClient(key[1]))
        return _batchers[key]
