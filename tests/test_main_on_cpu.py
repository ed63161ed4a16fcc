"""The `deltal` command dispatches each subcommand to its module as `python -m <module>` would, lists every
subcommand in its help, and exits 2 naming the commands when given an unknown one."""

import importlib.util
import subprocess
import sys

from deltal.__main__ import COMMANDS, find_command, main


def _deltal(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "deltal", *args], capture_output=True, text=True, timeout=180, **kwargs
    )


def test_every_subcommand_names_a_runnable_module():
    for command in COMMANDS:
        assert importlib.util.find_spec(command.module) is not None, command


def test_the_longest_matching_words_win_and_the_rest_is_passed_on():
    command, rest = find_command(["data", "math", "--out", "x"])
    assert (command.module, rest) == ("deltal.data.math", ["--out", "x"])
    assert find_command(["data"]) is None


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"deltal {command.words}" in out for command in COMMANDS)


def test_an_unknown_subcommand_exits_2_with_the_list(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_a_subcommand_runs_its_module_with_the_remaining_arguments():
    result = _deltal("data", "countdown", "--help")
    assert result.returncode == 0, result.stderr
    assert "--out" in result.stdout


def test_train_keeps_the_exit_status_of_its_module(tmp_path):
    result = _deltal("train", "method=nope", "data.max_response_length=8", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "unknown method 'nope'" in result.stderr
