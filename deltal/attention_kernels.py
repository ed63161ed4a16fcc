"""Whether flash-attn can serve the FSDP actor: its CUDA kernels import with the installed torch.

This is the one test ``setup.sh``, the launch scripts (``train_scripts/common.sh``, ``ATTN_IMPL=auto``), preflight
and its per-node probe use before choosing ``flash_attention_2``. The Python package alone proves nothing: a build
without nvcc leaves ``flash_attn`` with no ``flash_attn_2_cuda`` extension, and a wheel built for another torch or
CUDA has the extension but fails to load it (undefined symbols). Only importing the extension after torch does.

    python -m deltal.attention_kernels    # exit 0 when usable; else exit 1 with one line on stderr saying why

Importing this module imports nothing heavy; :func:`flash_attn_problem` imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

FLASH_ATTN_PACKAGE = "flash_attn"
# The compiled extension of flash-attn 2 (built with nvcc, linked against torch's libraries).
FLASH_ATTN_KERNELS = "flash_attn_2_cuda"


def flash_attn_problem() -> str | None:
    """None when flash-attn's kernels import with this torch; otherwise what is wrong, in one sentence."""
    if importlib.util.find_spec(FLASH_ATTN_PACKAGE) is None:
        return "flash-attn is not installed"
    if importlib.util.find_spec("torch") is None:
        return "flash-attn is installed but torch is not"
    # The extension resolves symbols of torch's shared libraries, which only importing torch loads.
    torch = importlib.import_module("torch")
    if importlib.util.find_spec(FLASH_ATTN_KERNELS) is None:
        return (
            f"flash-attn is installed without its CUDA kernels (no {FLASH_ATTN_KERNELS} module: a build that had no "
            "nvcc leaves only the Python package)"
        )
    try:
        importlib.import_module(FLASH_ATTN_KERNELS)
    except Exception as exc:  # noqa: BLE001 - whatever stops the extension from loading makes it unusable
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        build = f"torch {getattr(torch, '__version__', '?')} (CUDA {cuda or 'none'})"
        return (
            f"flash-attn's CUDA kernels do not import with {build}: {type(exc).__name__}: {exc} (a wheel built for "
            "another torch, CUDA or Python)"
        )
    return None


def build_parser() -> argparse.ArgumentParser:
    """The command takes no options; --help says what its exit status means."""
    return argparse.ArgumentParser(
        prog="python -m deltal.attention_kernels",
        description=__doc__.splitlines()[0] + " Exit 0 when usable, else 1 with the reason on stderr.",
    )


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    problem = flash_attn_problem()
    if problem is None:
        return 0
    print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
