"""One equivalence check with math-verify, run inside a checker process (never in the server's threads).

Library module of ``server/math``. The server schedules :func:`check_pair` on a pebble process pool; this module is
also what each worker process imports at start (:func:`init_worker`). Facts it relies on (math-verify 0.9.0, see
``docs/math-verification.md``):

- ``verify(gold, pred)`` is asymmetric: the ground truth goes first.
- math-verify's LaTeX extractor only looks inside ``$...$``, ``\\[...\\]`` or ``\\boxed{}``, so both strings are
  wrapped in ``$...$`` unless they already carry ``\\boxed`` or an unescaped ``$`` (``\\$5`` is a price, not math mode).
- only a bounded part of each string is parsed; it is cut where the answer stays whole (see :func:`answer_region`).
- its timeouts use ``signal.alarm``, which works only in a process's main thread: pebble runs tasks there.
- sympy objects are never returned: unpickling them in the server re-evaluates them (``9**(9**9)`` would hang it),
  so the result is a plain status string.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import resource
import signal

# gmpy2 big-integer work runs in C without checking signals and aborts the process when an allocation fails;
# sympy's pure-Python ground types keep every step interruptible by the alarm. Must be set before sympy is imported.
os.environ["SYMPY_GROUND_TYPES"] = "python"

EQUAL = "equal"
NOT_EQUAL = "not_equal"
PARSE_ERROR = "parse_error"
GOLD_PARSE_ERROR = "gold_parse_error"
TIMEOUT = "timeout"
MEMORY_LIMIT = "memory_limit"
TOO_LONG = "too_long"  # the prediction's answer alone exceeds the parsed length
GOLD_TOO_LONG = "gold_too_long"  # the ground truth's answer alone exceeds it (a data problem)

_math_verify_timeouts = 0  # "Timeout during comparison" records seen in this process (see _ComparisonTimeouts)


class _ComparisonTimeouts(logging.Handler):
    """Counts math-verify's comparison-timeout warnings: ``verify`` reports such a timeout only as False plus a log
    record, and the record is the one way to tell "timed out" from "not equal". The message holds no answer text."""

    def emit(self, record: logging.LogRecord) -> None:
        global _math_verify_timeouts
        if record.getMessage().startswith("Timeout"):
            _math_verify_timeouts += 1


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """Have Linux SIGKILL this worker when its parent, the forkserver, dies. Without it a killed forkserver leaves its
    workers running as orphans: pebble can no longer see them, so it never stops them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: no such call; the server still rebuilds its pool, orphans are then possible
    if os.getppid() == 1:  # the forkserver died before the call above took effect
        os._exit(1)


def init_worker(memory_limit_bytes: int) -> None:
    """pebble initializer: die with the forkserver, cap the address space, keep math-verify from logging answers."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    grader_log = logging.getLogger("math_verify.grader")
    grader_log.handlers = [_ComparisonTimeouts()]
    grader_log.setLevel(logging.WARNING)
    grader_log.propagate = False  # its records would otherwise reach the root logger with the answers in them
    logging.getLogger("math_verify.parser").setLevel(logging.CRITICAL)


# A "$" preceded by an even number of backslashes (none, or "\\\\" line breaks) opens math mode; "\\$" is a literal
# dollar sign, as in the price "\\$5".
_MATH_MODE_DOLLAR = re.compile(r"(?<!\\)(?:\\\\)*\$")
_BOXED = "\\boxed"


def last_boxed_content(text: str, max_chars: int) -> str | None:
    """Content of the last ``\\boxed{...}`` of ``text``; None when there is none, it never closes, or its content is
    longer than ``max_chars`` (the scan stops there, so a huge string costs no more than the limit). Escaped braces
    (``\\{``, set notation) do not count."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    opening = start + len(_BOXED)
    while opening < len(text) and text[opening].isspace():
        opening += 1
    if opening >= len(text) or text[opening] != "{":
        return None
    depth = 0
    index = opening
    stop = min(len(text), opening + max_chars + 2)
    while index < stop:
        char = text[index]
        if char == "\\":
            index += 2  # an escaped character, whatever it is
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[opening + 1 : index]
        index += 1
    return None


def answer_region(text: str, limit: int) -> str | None:
    """The part of ``text`` that is parsed: all of it when it has at most ``limit`` characters, else its last complete
    ``\\boxed{}`` (the final answer). None when even that does not fit: a cut answer may read as a different one
    (the last rows of a long matrix are not the matrix), so it is never compared."""
    text = text.strip()
    if len(text) <= limit:
        return text
    content = last_boxed_content(text, limit - len(_BOXED) - 2)
    if content is None:
        return None
    return f"{_BOXED}{{{content}}}"


def wrap_for_math_verify(text: str) -> str:
    """Put ``text`` in math mode unless it already has a ``\\boxed`` or an unescaped ``$``."""
    if _BOXED in text or _MATH_MODE_DOLLAR.search(text):
        return text
    return f"${text}$"


def check_pair(gold: str, prediction: str, inner_timeout_s: int, tail_chars: int) -> str:
    """Compare one prediction with its ground truth; returns a status string (never a sympy object)."""
    # Imported here so the server process, which only schedules this function, never loads sympy; workers get the
    # modules from the forkserver's preload and pay nothing.
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    global _math_verify_timeouts
    gold_region = answer_region(gold, tail_chars)
    if gold_region is None:
        return GOLD_TOO_LONG
    prediction_region = answer_region(prediction, tail_chars)
    if prediction_region is None:
        return TOO_LONG
    try:
        try:
            gold_parsed = parse(wrap_for_math_verify(gold_region), parsing_timeout=inner_timeout_s, raise_on_error=True)
        except TimeoutException:
            return TIMEOUT
        except Exception:  # noqa: BLE001 - a gold string math-verify cannot read is a data problem, reported as such
            return GOLD_PARSE_ERROR
        if not gold_parsed:
            return GOLD_PARSE_ERROR
        try:
            pred_parsed = parse(
                wrap_for_math_verify(prediction_region), parsing_timeout=inner_timeout_s, raise_on_error=True
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
