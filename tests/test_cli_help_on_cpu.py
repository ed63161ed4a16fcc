"""`--help` is the documentation: every command line of the package (each subcommand of `deltal` and each module
that runs as `python -m`; but `train`, whose options are hydra's, and `serve-math`, a shell script's) exposes
`build_parser()` (in its module, or in the package's `__main__`), every option of it and of its subcommands has help
text, and `--help` exits 0 at every level. (`tests/test_main_on_cpu.py` checks that `deltal <command>` reaches the
module.)"""

import argparse
import importlib
from pathlib import Path

import pytest

import deltal
from deltal.__main__ import COMMANDS

NOT_ARGPARSE = {"deltal", "deltal.train", "deltal.rewards.serve_math"}  # the dispatcher, hydra, a shell script
PACKAGE_ROOT = Path(deltal.__file__).parent


def _python_m_modules() -> set[str]:
    """Modules that run as ``python -m``: packages with a ``__main__.py`` and modules with a ``__main__`` guard."""
    modules = set()
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = ("deltal", *path.relative_to(PACKAGE_ROOT).with_suffix("").parts)
        if path.name == "__main__.py":
            modules.add(".".join(parts[:-1]))
        elif 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"):
            modules.add(".".join(parts))
    return modules


COMMAND_LINES = sorted(({command.module for command in COMMANDS} | _python_m_modules()) - NOT_ARGPARSE)


def _build_parser(module_name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(module_name)
    if not hasattr(module, "build_parser") and hasattr(module, "__path__"):  # a package run by its __main__
        module = importlib.import_module(f"{module_name}.__main__")
    assert hasattr(module, "build_parser"), f"{module_name} has no build_parser(); declare its options with deltal.cli"
    return module.build_parser()


def _parsers(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(subcommand words, parser) for the parser and, recursively, each of its subcommands."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from _parsers(subparser, (*words, name))


def test_the_walk_covers_every_deltal_subcommand_and_the_cpu_tools():
    assert {"deltal.data.countdown", "deltal.analysis", "deltal.cpu.assets", "deltal.cpu.warmstart"} <= set(
        COMMAND_LINES
    )


@pytest.mark.parametrize("module_name", COMMAND_LINES)
def test_every_option_has_help_and_help_exits_0(module_name, capsys):
    for words, parser in _parsers(_build_parser(module_name)):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                undocumented = [choice.dest for choice in action._choices_actions if not choice.help]
                assert not undocumented, (module_name, words, undocumented)
            else:
                assert action.help and action.help.strip(), (module_name, words, action.dest)
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["--help"])
        assert exit_info.value.code == 0, (module_name, words)
        assert "usage:" in capsys.readouterr().out
