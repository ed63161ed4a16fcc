"""``deltal serve-math`` (``python -m deltal.rewards.serve_math``): start this checkout's LaTeX-equivalence server.

    deltal serve-math                          # 127.0.0.1:6284, one checker process per CPU
    MATH_SERVER_WORKERS=8 deltal serve-math    # every knob of server/math/start.sh works the same way

The server lives outside the package (``server/math/``: its own requirements, deployable on its own, sharing only its
HTTP contract with ``deltal.rewards.math_client``). This command only finds ``server/math/start.sh`` beside the
installed package, which ``setup.sh`` installs editable from the checkout, and replaces itself with it, so signals
and the exit status are the server's. The server runs with this interpreter unless ``PYTHON`` names another (the
GPU set-up's ``deltal_server`` env, for example). Extra arguments go to uvicorn.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import deltal

EXIT_USAGE = 2
# The package sits at <checkout>/deltal, the server at <checkout>/server/math.
START_SCRIPT = Path(deltal.__file__).resolve().parents[1] / "server" / "math" / "start.sh"


def main(argv: list[str] | None = None) -> int:
    """Exec the server's start script with ``argv``; return 2 with the fix when the checkout has no server."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not START_SCRIPT.is_file():
        print(
            f"deltal serve-math: no server at {START_SCRIPT} (deltal is installed without its source checkout). "
            "Install with `bash setup.sh` from a clone of the repository, or run `bash server/math/start.sh` there.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    os.environ.setdefault("PYTHON", sys.executable)
    os.execvp("bash", ["bash", str(START_SCRIPT), *argv])


if __name__ == "__main__":
    sys.exit(main())
