"""The error every preflight check module raises (kept apart so the check modules do not import each other)."""


class PreflightError(RuntimeError):
    """The run cannot start; the message lists each problem and its fix."""
