"""`--help` is the documentation: every subcommand of `deltal` (but `train`, whose options are hydra's, and
`serve-math`, a shell script's) exposes `build_parser()` (in its module, or in the package's `__main__`), every
option of it and of its subcommands has help text, and `--help` exits 0 at every level.
(`tests/test_main_on_cpu.py` checks that `deltal <command>` reaches the module.)"""

import argparse
import importlib

import pytest

from deltal.__main__ import COMMANDS

NOT_ARGPARSE = {"train", "serve-math"}
WALKED = [command for command in COMMANDS if command.words not in NOT_ARGPARSE]


def _build_parser(module_name: str):
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


@pytest.mark.parametrize("command", WALKED, ids=[command.words for command in WALKED])
def test_every_option_has_help_and_help_exits_0(command, capsys):
    for words, parser in _parsers(_build_parser(command.module)):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                undocumented = [choice.dest for choice in action._choices_actions if not choice.help]
                assert not undocumented, (command.words, words, undocumented)
            else:
                assert action.help and action.help.strip(), (command.words, words, action.dest)
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["--help"])
        assert exit_info.value.code == 0, (command.words, words)
        assert "usage:" in capsys.readouterr().out
