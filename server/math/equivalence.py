"""One equivalence check with math-verify, run inside a checker process (never in the server's threads).

Library module of ``server/math``. The server schedules :func:`check_pair` on a pebble process pool; this module is
also what each worker process imports at start (:func:`init_worker`). Facts it relies on (math-verify 0.9.0, see
``docs/math-verification.md``):

- ``verify(gold, pred)`` is asymmetric: the ground truth goes first.
- math-verify's LaTeX extractor only looks inside ``$...$``, ``\\[...\\]`` or ``\\boxed{}``, so both strings are
  wrapped in ``$...$`` unless they already carry ``\\boxed`` or ``$``.
- its timeouts use ``signal.alarm``, which works only in a process's main thread: pebble runs tasks there.
- sympy objects are never returned: unpickling them in the server re-evaluates them (``9**(9**9)`` would hang it),
  so the result is a plain status string.
"""

from __future__ import annotations

import logging
import os
import resource

# gmpy2 big-integer work runs in C without checking signals and aborts the process when an allocation fails;
# sympy's pure-Python ground types keep every step interruptible by the alarm. Must be set before sympy is imported.
os.environ["SYMPY_GROUND_TYPES"] = "python"

EQUAL = "equal"
NOT_EQUAL = "not_equal"
PARSE_ERROR = "parse_error"
GOLD_PARSE_ERROR = "gold_parse_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"

_math_verify_timeouts = 0  # "Timeout during comparison" records seen in this process (see _ComparisonTimeouts)


class _ComparisonTimeouts(logging.Handler):
    """Counts math-verify's comparison-timeout warnings: ``verify`` reports such a timeout only as False plus a log
    record, and the record is the one way to tell "timed out" from "not equal". The message holds no answer text."""

    def emit(self, record: logging.LogRecord) -> None:
        global _math_verify_timeouts
        if record.getMessage().startswith("Timeout"):
            _math_verify_timeouts += 1


def init_worker(memory_limit_bytes: int) -> None:
    """pebble initializer: cap the address space and keep math-verify from logging answers."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    grader_log = logging.getLogger("math_verify.grader")
    grader_log.handlers = [_ComparisonTimeouts()]
    grader_log.setLevel(logging.WARNING)
    grader_log.propagate = False  # its records would otherwise reach the root logger with the answers in them
    logging.getLogger("math_verify.parser").setLevel(logging.CRITICAL)


def wrap_for_math_verify(text: str, tail_chars: int) -> str:
    """Keep the last ``tail_chars`` characters (the answer sits at the end) and put them in math mode."""
    text = text[-tail_chars:].strip()
    if "\\boxed" in text or "$" in text:
        return text
    return f"${text}$"


def check_pair(gold: str, prediction: str, inner_timeout_s: int, tail_chars: int) -> str:
    """Compare one prediction with its ground truth; returns a status string (never a sympy object)."""
    # Imported here so the server process, which only schedules this function, never loads sympy; workers get the
    # modules from the forkserver's preload and pay nothing.
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    global _math_verify_timeouts
    try:
        try:
            gold_parsed = parse(
                wrap_for_math_verify(gold, tail_chars), parsing_timeout=inner_timeout_s, raise_on_error=True
            )
        except TimeoutException:
            return TIMEOUT
        except Exception:  # noqa: BLE001 - a gold string math-verify cannot read is a data problem, reported as such
            return GOLD_PARSE_ERROR
        if not gold_parsed:
            return GOLD_PARSE_ERROR
        try:
            pred_parsed = parse(
                wrap_for_math_verify(prediction, tail_chars), parsing_timeout=inner_timeout_s, raise_on_error=True
            )
        except TimeoutException:
            return TIMEOUT
        except Exception:  # noqa: BLE001 - unreadable model output is the model's failure, not the server's
            return PARSE_ERROR
        if not pred_parsed:
            return PARSE_ERROR
        timeouts_before = _math_verify_timeouts
        if verify(gold_parsed, pred_parsed, timeout_seconds=inner_timeout_s):
            return EQUAL
        return TIMEOUT if _math_verify_timeouts > timeouts_before else NOT_EQUAL
    except MemoryError:
        # RLIMIT_AS turned a runaway allocation into an exception; the worker itself is still healthy.
        return MEMORY_LIMIT
