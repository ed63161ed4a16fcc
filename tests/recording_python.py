"""A stand-in for python that the launch scripts call instead of the real one, so a test sees the command lines a
script would run without running them.

The scripts take their python from a variable (``DELTAL_PYTHON`` in train_scripts/common.sh, ``PYTHON`` in the
quickstart); a test points it at the file ``write_recording_python`` makes and reads back what it recorded.
"""

import json
import sys
import textwrap
from pathlib import Path

# The variable that names the file the stand-in appends to: one JSON list of arguments per line.
RECORD_VARIABLE = "RECORD_PYTHON_TO"
# Set it to answer train_scripts/common.sh's flash-attn check (python -m deltal.attention_kernels) as a node whose
# kernels import; unset, the check fails the way it does with a flash-attn built for another torch.
FLASH_ATTN_VARIABLE = "FAKE_FLASH_ATTN"


def write_recording_python(path: Path) -> Path:
    """Write the stand-in at ``path``, executable, and return ``path``."""
    path.write_text(
        f"#!{sys.executable} -I\n"
        + textwrap.dedent(
            f"""
            import json, os, sys
            if sys.argv[1:3] == ["-m", "deltal.attention_kernels"]:
                if os.environ.get("{FLASH_ATTN_VARIABLE}"):
                    sys.exit(0)
                sys.exit("flash-attn's CUDA kernels do not import with torch 2.11.0 (CUDA 13.0): undefined symbol")
            with open(os.environ["{RECORD_VARIABLE}"], "a") as record:
                record.write(json.dumps(sys.argv[1:]) + "\\n")
            """
        )
    )
    path.chmod(0o755)
    return path


def recorded_commands(record: Path) -> list[list[str]]:
    """Every command line the stand-in recorded in ``record``, oldest first (none when it was never called)."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def recorded_train_command(record: Path) -> list[str]:
    """The arguments of the one ``python -m deltal.train`` call in ``record``."""
    commands = recorded_commands(record)
    train = [argv for argv in commands if argv[:2] == ["-m", "deltal.train"]]
    assert len(train) == 1, f"expected one deltal.train call, recorded: {commands}"
    return train[0]
