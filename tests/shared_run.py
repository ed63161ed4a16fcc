"""The suite's one shared training run, started in the background as soon as a selected test needs it.

A launch of the CPU pipeline spends most of its two minutes starting processes, keeping about one of two cores busy,
so the run trains while the unit tests use the other core. The suite runs in several pytest-xdist workers; they all
see one ``SharedRun`` folder (made by the controlling process, named to the workers by an environment variable): the
first worker that collects a test reading the run starts it under a file lock, and every such test waits for its exit
code. The controlling process stops it if the session ends before the run does.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock

# The folder shared by the controlling process and its workers.
FOLDER_VARIABLE = "DELTAL_TEST_SHARED_RUN"
# A run whose exit code has not appeared by then is reported with its log (a launch takes about 2 minutes on 2 cores).
WAIT_LIMIT_S = 900.0


class SharedRun:
    """One ``python -m <module> <args>`` run in the background: its log, its exit code, and whoever started it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.log = folder / "run.log"
        self.exit_code_file = folder / "exit_code"
        self.pid_file = folder / "pid"

    def start(self, module: str, args: list[str]) -> None:
        """Start the run unless another worker has; returns at once."""
        with FileLock(self.folder / "start.lock"):
            if self.pid_file.exists():
                return
            # The shell writes the exit code after the run ends, whichever process is left to wait for it; a new
            # session lets stop() end the run and everything it started.
            write_exit_code = '"$@" > "$LOG" 2>&1; echo $? > "$EXIT.tmp"; mv "$EXIT.tmp" "$EXIT"'
            process = subprocess.Popen(
                ["sh", "-c", write_exit_code, "sh", sys.executable, "-m", module, *args],
                env={**os.environ, "LOG": str(self.log), "EXIT": str(self.exit_code_file)},
                start_new_session=True,
                stdin=subprocess.DEVNULL,
            )
            self.pid_file.write_text(str(process.pid))

    def started(self) -> bool:
        return self.pid_file.exists()

    def wait(self) -> None:
        """Block until the run has ended; a failed or overdue run raises with the end of its log."""
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not self.exit_code_file.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the shared run did not end within {WAIT_LIMIT_S:.0f} s:\n{self._log_tail()}")
            time.sleep(1.0)
        exit_code = int(self.exit_code_file.read_text())
        if exit_code != 0:
            raise RuntimeError(f"the shared run exited {exit_code}:\n{self._log_tail()}")

    def stop(self) -> None:
        """End a run that is still going (the session ended first: an error, Ctrl-C, or -x)."""
        if self.started() and not self.exit_code_file.exists():
            try:
                os.killpg(int(self.pid_file.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else "(no log)"
