"""Settings of the LaTeX-equivalence server, read once from ``MATH_SERVER_*`` environment variables.

Library module of ``server/math`` (``bash server/math/start.sh`` runs the server). Every variable has a safe default;
a value that does not parse, or that contradicts another one, stops the server at start-up with a message naming the
variable to fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _env_number(name: str, default: float, kind: type, minimum: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return kind(default)
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}; unset it or give a number") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class ServerSettings:
    """Limits and timeouts of one server process (see README.md for the meaning of each)."""

    workers: int = 2  # MATH_SERVER_WORKERS: checker processes
    hard_timeout_s: float = 5.0  # MATH_SERVER_TIMEOUT: a check running longer is killed with its process
    inner_timeout_s: int = 2  # MATH_SERVER_INNER_TIMEOUT: math-verify's own alarm, per parse/comparison
    batch_deadline_s: float = 300.0  # MATH_SERVER_BATCH_DEADLINE: a request's checks not done by then are cancelled
    max_batch: int = 4096  # MATH_SERVER_MAX_BATCH: pairs per /verify request
    max_body_bytes: int = 16 * 1024 * 1024  # MATH_SERVER_MAX_BODY_BYTES: larger requests get 413
    body_timeout_s: float = 30.0  # MATH_SERVER_BODY_TIMEOUT: a request body not complete by then gets 408
    max_answer_chars: int = 1024 * 1024  # MATH_SERVER_MAX_ANSWER_CHARS: longer strings get 422
    parse_tail_chars: int = 4000  # MATH_SERVER_PARSE_TAIL_CHARS: only this many trailing characters are parsed
    worker_memory_mb: int = 2048  # MATH_SERVER_WORKER_MEMORY_MB: RLIMIT_AS of each checker process
    worker_max_tasks: int = 2000  # MATH_SERVER_WORKER_MAX_TASKS: a checker process is replaced after this many

    def __post_init__(self) -> None:
        if self.inner_timeout_s >= self.hard_timeout_s:
            raise ValueError(
                f"MATH_SERVER_INNER_TIMEOUT ({self.inner_timeout_s}) must be below MATH_SERVER_TIMEOUT "
                f"({self.hard_timeout_s}): the in-process alarm has to fire before the process is killed"
            )

    @classmethod
    def from_env(cls) -> ServerSettings:
        """Build the settings from the environment (defaults for unset variables)."""
        defaults = cls()
        return cls(
            workers=_env_number("MATH_SERVER_WORKERS", defaults.workers, int, 1),
            hard_timeout_s=_env_number("MATH_SERVER_TIMEOUT", defaults.hard_timeout_s, float, 0.5),
            inner_timeout_s=_env_number("MATH_SERVER_INNER_TIMEOUT", defaults.inner_timeout_s, int, 1),
            batch_deadline_s=_env_number("MATH_SERVER_BATCH_DEADLINE", defaults.batch_deadline_s, float, 1.0),
            max_batch=_env_number("MATH_SERVER_MAX_BATCH", defaults.max_batch, int, 1),
            max_body_bytes=_env_number("MATH_SERVER_MAX_BODY_BYTES", defaults.max_body_bytes, int, 1024),
            body_timeout_s=_env_number("MATH_SERVER_BODY_TIMEOUT", defaults.body_timeout_s, float, 0.1),
            max_answer_chars=_env_number("MATH_SERVER_MAX_ANSWER_CHARS", defaults.max_answer_chars, int, 1),
            parse_tail_chars=_env_number("MATH_SERVER_PARSE_TAIL_CHARS", defaults.parse_tail_chars, int, 16),
            worker_memory_mb=_env_number("MATH_SERVER_WORKER_MEMORY_MB", defaults.worker_memory_mb, int, 256),
            worker_max_tasks=_env_number("MATH_SERVER_WORKER_MAX_TASKS", defaults.worker_max_tasks, int, 1),
        )
