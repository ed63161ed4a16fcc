"""How many torch threads deltal's CPU processes use: env ``DELTAL_CPU_THREADS`` (default 1).

On a small shared box, more intra-op threads than free cores makes torch spin-wait: a 256-sequence decode step
measured 5x slower with 2 threads than with 1 while another process held a core. Raise it on an idle machine.
"""

from __future__ import annotations

import os


def cpu_threads() -> int:
    """Torch intra-op threads for deltal's CPU rollout servers and warm start."""
    raw = os.environ.get("DELTAL_CPU_THREADS", "1").strip()
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"DELTAL_CPU_THREADS={raw!r} must be a positive integer (e.g. 1 or 2).")
    return int(raw)
