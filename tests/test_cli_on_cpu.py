"""deltal.cli turns a settings dataclass into a parser: each field's docstring is its help (a field without one is
refused), Literal fields offer their choices, fields without a default are required, booleans are switches,
tuples are comma-separated, a per-field parser's ValueError is a usage error (exit 2) with its own message, and the
parsed values come back as the dataclass."""

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from deltal.cli import add_options, field_docs, option, settings_from


def _even(text: str) -> int:
    value = int(text)
    if value % 2:
        raise ValueError(f"--pair-count must be even, got {value}")
    return value


@dataclass(frozen=True, kw_only=True)
class Base:
    seed: int = 0
    """Seed of everything (100% reproducible)."""


@dataclass(frozen=True, kw_only=True)
class Settings(Base):
    out: Path
    """Folder to write."""
    style: Literal["plain", "chat"] = "plain"
    """Prompt style."""
    quiet: bool = False
    """Print nothing."""
    color: bool = True
    """Colour the output."""
    limit: int | None = None
    """Stop after this many rows."""
    alphas: tuple[float, ...] = (1.0, 0.5)
    """Exponents."""
    pair_count: int = field(default=2, metadata=option(parse=_even))
    """Rows per pair."""


def _parser() -> argparse.ArgumentParser:
    return add_options(argparse.ArgumentParser(prog="tool"), Settings)


def _help_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {action.dest: action for action in parser._actions}


def test_the_field_docstrings_are_the_help_with_the_default():
    assert field_docs(Settings)["seed"] == "Seed of everything (100% reproducible)."  # inherited from Base
    actions = _help_of(_parser())
    assert actions["out"].help == "Folder to write."
    assert actions["pair_count"].help == "Rows per pair (default 2)."
    assert actions["alphas"].help == "Exponents (default 1,0.5)."
    assert actions["limit"].help == "Stop after this many rows."
    assert "100% reproducible" in _parser().format_help()  # the % does not break argparse's formatting


def test_literal_fields_offer_their_choices(capsys):
    assert _help_of(_parser())["style"].choices == ("plain", "chat")
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--out", "x", "--style", "fancy"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'fancy'" in capsys.readouterr().err


def test_a_field_without_default_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args([])
    assert exit_info.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_booleans_are_switches_and_values_come_back_as_the_dataclass():
    settings = settings_from(_parser().parse_args(["--out", "x"]), Settings)
    assert settings == Settings(out=Path("x"))
    argv = ["--out", "x", "--quiet", "--no-color", "--limit", "3", "--alphas", "1,0.75", "--seed", "7"]
    settings = settings_from(_parser().parse_args(argv), Settings)
    assert (settings.quiet, settings.color, settings.limit, settings.alphas, settings.seed) == (
        True,
        False,
        3,
        (1.0, 0.75),
        7,
    )


def test_a_parse_error_is_a_usage_error_with_its_own_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--out", "x", "--pair-count", "3"])
    assert exit_info.value.code == 2
    assert "--pair-count must be even, got 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parser().parse_args(["--out", "x", "--alphas", "1,a"])
    assert "comma-separated floats, got '1,a'" in capsys.readouterr().err


def test_a_field_without_docstring_is_refused():
    @dataclass
    class Undocumented:
        out: Path
        """Folder to write."""
        steps: int = 3

    with pytest.raises(TypeError, match="Undocumented.steps has no docstring"):
        add_options(argparse.ArgumentParser(), Undocumented)


def test_positional_and_repeated_fields_collect_their_values_in_the_fields_container():
    @dataclass(frozen=True)
    class Collected:
        words: tuple[str, ...] = field(default=(), metadata=option(positional=True))
        """Any number of words."""
        tags: list[str] = field(default_factory=list, metadata=option(repeat=True))
        """One tag per --tags; repeatable."""

    parser = add_options(argparse.ArgumentParser(), Collected)
    assert settings_from(parser.parse_args([]), Collected) == Collected()
    settings = settings_from(parser.parse_args(["a", "b", "--tags", "x", "--tags", "y"]), Collected)
    assert settings == Collected(words=("a", "b"), tags=["x", "y"])
