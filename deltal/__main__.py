"""The ``deltal`` command: one entry point whose subcommands are the package's own tools.

    deltal train method=delta_l data.max_response_length=3072 ...   # = python -m deltal.train ...
    deltal data countdown --out DIR                                  # = python -m deltal.data.countdown ...
    deltal --help                                                    # every subcommand

Each subcommand runs its module exactly as ``python -m <module>`` does (same arguments, same exit status), so the
two forms stay interchangeable. To add a subcommand, add one line to ``COMMANDS``.
"""

from __future__ import annotations

import runpy
import sys
from typing import NamedTuple

EXIT_USAGE = 2


class Command(NamedTuple):
    """One subcommand: the words that name it, the module it runs, and a one-line description."""

    words: str
    module: str
    summary: str


COMMANDS: list[Command] = [
    Command("train", "deltal.train", "train with verl and deltal (hydra overrides; DRY_RUN=1 prints the config)"),
    Command("quickstart", "deltal.quickstart", "summarise a CPU quickstart run: reward windows, curves PNG"),
    Command("trl-quickstart", "deltal.quickstart.trl", "train the tiny CPU model with TRL's GRPOTrainer + ΔL"),
    Command("data countdown", "deltal.data.countdown", "build the CountDown parquet files"),
    Command("data math", "deltal.data.math", "build the Math parquet files from local copies"),
    Command("analyze", "deltal.analysis", "export logs to a tidy table; paper tables, curves, Avg@k / Pass@k"),
    Command("lab", "deltal.analysis.variance", "gradient-variance lab: synthetic Monte Carlo or a real model"),
    Command("data countdown_trace", "deltal.data.countdown_trace", "build the CountDown search-trace parquet files"),
    Command("compare", "deltal.experiments.compare", "methods x seeds on a trace task: one table, figures"),
    Command("frontier", "deltal.experiments.frontier", "methods x learning rates: the stability frontier"),
    Command("serve-math", "deltal.rewards.serve_math", "start the LaTeX-equivalence server (server/math/start.sh)"),
]


def usage() -> str:
    """The command list, as ``deltal --help`` prints it."""
    width = max(len(command.words) for command in COMMANDS)
    lines = [f"  deltal {command.words:<{width}}  {command.summary}" for command in COMMANDS]
    return "usage: deltal <command> [arguments]; `deltal <command> --help` for its options\n\n" + "\n".join(lines)


def find_command(argv: list[str]) -> tuple[Command, list[str]] | None:
    """The command whose words start ``argv`` (the longest match) and the arguments after them."""
    matches = [c for c in COMMANDS if argv[: len(c.words.split())] == c.words.split()]
    if not matches:
        return None
    command = max(matches, key=lambda c: len(c.words.split()))
    return command, argv[len(command.words.split()) :]


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand named by ``argv`` (default: the process arguments); return its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else EXIT_USAGE
    found = find_command(argv)
    if found is None:
        print(f"deltal: unknown command {' '.join(argv[:2])!r}\n{usage()}", file=sys.stderr)
        return EXIT_USAGE
    command, rest = found
    sys.argv = [f"deltal {command.words}", *rest]
    try:
        runpy.run_module(command.module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
