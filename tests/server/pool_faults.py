"""Check functions that misbehave on purpose, imported by the checker processes of test_checker_pool_on_cpu.py."""

import os
import signal
import time

import equivalence


def check_with_faults(gold: str, prediction: str, inner_timeout_s: int, tail_chars: int) -> str:
    """Behaves like equivalence.check_pair, except for the predictions "HANG" and "CRASH"."""
    if prediction == "HANG":
        # Block SIGALRM so math-verify's own timeout cannot fire: only killing the process ends this.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(120)
    if prediction == "CRASH":
        os.kill(os.getpid(), signal.SIGKILL)  # like a GMP abort or the OOM killer
    return equivalence.check_pair(gold, prediction, inner_timeout_s, tail_chars)
