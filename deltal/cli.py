"""Command lines from settings dataclasses: every option is a typed field whose docstring is its ``--help`` text.

Each entry point of the package (the data builders, the analysis tools, the gradient-variance lab, the quickstart
summary, the CPU assets) declares its options once, as a dataclass, and builds its parser here::

    @dataclass(frozen=True, kw_only=True)
    class Settings:
        out: Path
        \"\"\"Folder to write.\"\"\"
        template: Literal["base", "instruct"] = "base"
        \"\"\"Prompt style.\"\"\"

    def build_parser() -> argparse.ArgumentParser:
        return add_options(argparse.ArgumentParser(prog="python -m deltal.x"), Settings)

    def main(argv: list[str] | None = None) -> int:
        settings = settings_from(build_parser().parse_args(argv), Settings)

It is shared rather than owned by one layer so that the options of every command read the same way (one flag per
field, its help the field's docstring and its default), ``tests/test_cli_help_on_cpu.py`` can check every command
of ``deltal`` in one walk, and a new command gets documented help without writing any. It imports nothing of the
package, so any layer may use it without an upward import.

How a field becomes an argument (its annotation and ``field(metadata=option(...))``):

- no default: a required option (or a required positional with ``option(positional=True)``);
- ``bool``: a switch (``--flag``; ``--flag/--no-flag`` when the default is True);
- ``X | None``: an option of type X whose default None means "not given";
- ``Literal[...]``: the choices (or ``option(choices=...)`` for a list kept elsewhere);
- ``tuple[X, ...]`` / ``list[X]``: comma-separated values (``1,0.75,0.5``); with ``option(repeat=True)``, one value
  per repetition of the flag; as a positional, any number of words;
- ``option(doc=...)``: the help when it is built from constants (a docstring is a literal);
- ``option(parse=f)``: ``f(text)`` turns the text into the value; a ValueError it raises becomes argparse's usage
  error (exit 2) with the message as written.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

METADATA_KEY = "deltal.cli"


@dataclasses.dataclass(frozen=True)
class Option:
    """How one field is read from the command line, beyond what its annotation says."""

    parse: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    metavar: str | None = None
    positional: bool = False
    repeat: bool = False
    doc: str | None = None


def option(
    *,
    parse: Callable[[str], Any] | None = None,
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    positional: bool = False,
    repeat: bool = False,
    doc: str | None = None,
) -> dict[str, Option]:
    """``metadata`` for ``dataclasses.field``: a text parser, choices, a metavar, positional or repeated use, and
    ``doc``, the help for a field whose text is built from constants (a docstring must be a literal)."""
    return {METADATA_KEY: Option(parse, choices, metavar, positional, repeat, doc)}


def field_docs(config_type: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass and its dataclass bases (Python keeps none of them)."""
    docs: dict[str, str] = {}
    for klass in reversed(config_type.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:], strict=False):
            is_doc = (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            )
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _without_none(annotation: Any) -> Any:
    """``X | None`` -> X; anything else unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _reporting_value_errors(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` whose ValueError reaches the user as argparse's usage error, with its own message."""

    def parse_text(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err

    return parse_text


def _comma_separated(kind: type, container: type) -> Callable[[str], Any]:
    def parse_text(text: str) -> Any:
        try:
            values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from err
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, got {text!r}")
        return container(values)

    return parse_text


def _shown(value: Any) -> str:
    """A default as the user would type it."""
    if isinstance(value, Mapping):
        return ",".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, tuple | list):
        return ",".join(f"{item:g}" if isinstance(item, float) else str(item) for item in value)
    return str(value)


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def add_options(parser: argparse.ArgumentParser, config_type: type) -> argparse.ArgumentParser:
    """Add one argument per field of the dataclass ``config_type`` to ``parser`` (returned, for chaining).

    Raises TypeError when a field has no docstring: its docstring is its only help text.
    """
    docs = field_docs(config_type)
    hints = typing.get_type_hints(config_type)
    for field in dataclasses.fields(config_type):
        if not field.init:
            continue
        spec: Option = field.metadata.get(METADATA_KEY, Option())
        doc = spec.doc or docs.get(field.name, "")
        if not doc:
            raise TypeError(
                f"{config_type.__name__}.{field.name} has no docstring; write one under the field (it is the --help)"
            )
        annotation = _without_none(hints[field.name])
        default = _default(field)
        required = default is dataclasses.MISSING
        kwargs: dict[str, Any] = {}
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        choices = spec.choices
        if typing.get_origin(annotation) is Literal:
            choices = typing.get_args(annotation)
            annotation = type(choices[0])
        origin = typing.get_origin(annotation)
        parse = _reporting_value_errors(spec.parse) if spec.parse is not None else None
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction if default is True else "store_true"
        elif origin in (tuple, list):
            kind = typing.get_args(annotation)[0]
            if spec.repeat:
                kwargs.update(action="append", type=parse or kind)
            elif spec.positional:
                kwargs.update(nargs="+" if required else "*", type=parse or kind)
            else:
                kwargs["type"] = parse or _comma_separated(kind, origin)
        else:
            kwargs["type"] = parse or annotation
        if choices is not None:
            kwargs["choices"] = tuple(choices)
        if not required:
            kwargs["default"] = default
        help_text = doc
        if not required and default not in (None, (), [], {}) and annotation is not bool:
            shown = f"(default {_shown(default)})"
            help_text = f"{doc[:-1]} {shown}." if doc.endswith(".") else f"{doc} {shown}"
        kwargs["help"] = help_text.replace("%", "%%")  # argparse formats help with %-style placeholders
        if spec.positional:
            parser.add_argument(field.name, **kwargs)
        else:
            parser.add_argument("--" + field.name.replace("_", "-"), required=required, **kwargs)
    return parser


def settings_from(args: argparse.Namespace, config_type: type[Any]) -> Any:
    """The ``config_type`` instance holding the parsed values of its fields."""
    hints = typing.get_type_hints(config_type)
    values = {}
    for field in dataclasses.fields(config_type):
        if field.init:
            value = getattr(args, field.name)
            # argparse collects positional and repeated values in a list, whatever the field's container
            if isinstance(value, list) and typing.get_origin(_without_none(hints[field.name])) is tuple:
                value = tuple(value)
            values[field.name] = value
    return config_type(**values)
