"""Reading the data builders' local JSON and JSONL files so that every bad file ends in one clear error naming the
file, the line and record, and the rule broken, never in a traceback.

Library module (used by ``deltal.data.math`` and ``deltal.data.countdown``). Python's JSON reader fails on some inputs
with errors that name nothing: a RecursionError on deeply nested arrays, a ValueError on integers of more than 4300
digits (CPython's int-string limit), a UnicodeDecodeError on non-UTF-8 bytes. These are caught here and located in
the text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# JSON tokens that matter for locating a record: strings (skipped whole), integers, and structure characters.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[\[\]{},]')


class InputFileError(ValueError):
    """An input file is missing, unreadable or not in the documented format."""


def read_text(path: Path, expected: str) -> str:
    """The file's text, or InputFileError saying what is wrong with the file and what was ``expected``."""
    if path.is_dir():
        raise InputFileError(f"{path} is a folder, not a file; expected {expected}")
    if not path.is_file():
        raise InputFileError(f"{path} does not exist; expected {expected}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputFileError(f"{path} cannot be read ({error.strerror}); check its permissions") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputFileError(
            f"{path} line {line} is not UTF-8 text (byte {data[error.start]:#04x}); save the file as UTF-8"
        ) from None


def _record_at(text: str, offset: int) -> int | None:
    """Index of the top-level list element that contains ``offset``, or None when the text is not a JSON list."""
    depth = 0
    record = 0
    for token in _TOKENS.finditer(text, 0, offset):
        kind = token.group()
        if kind in "[{":
            depth += 1
        elif kind in "]}":
            depth -= 1
        elif kind == "," and depth == 1:
            record += 1
    return record if text.lstrip().startswith("[") and depth >= 1 else None


def _where(path: Path, text: str, offset: int) -> str:
    record = _record_at(text, offset)
    line = text.count("\n", 0, offset) + 1
    return f"{path} line {line}" + (f" (record {record})" if record is not None else "")


def _deepest_offset(text: str) -> tuple[int, int]:
    """(offset, depth) of the most deeply nested point of the text."""
    depth = deepest = where = 0
    for token in _TOKENS.finditer(text):
        if token.group() in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, token.start()
        elif token.group() in "]}":
            depth -= 1
    return where, deepest


def _first_long_integer(text: str) -> tuple[int, int]:
    """(offset, digits) of the first integer too long for Python's int-string limit (strings are skipped)."""
    for token in _TOKENS.finditer(text):
        number = token.group().lstrip("-")
        if number.isdigit() and len(number) > 4300:
            return token.start(), len(number)
    return 0, 0


def parse_json(text: str, path: Path, expected: str, line: int | None = None) -> Any:
    """``json.loads(text)``, with every failure turned into an InputFileError that locates it. ``line``: the line of
    the file that ``text`` is (JSONL), else ``text`` is the whole file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = _where(path, text, error.pos) if line is None else f"{path} line {line}"
        raise InputFileError(f"{where} is not valid JSON ({error.msg}); expected {expected}") from None
    except RecursionError:
        offset, depth = _deepest_offset(text)
        where = _where(path, text, offset) if line is None else f"{path} line {line}"
        raise InputFileError(
            f"{where} nests JSON {depth} levels deep, more than the reader allows; no dataset row needs this, fix or "
            "drop that record"
        ) from None
    except ValueError:  # CPython's int-string limit (JSONDecodeError, also a ValueError, is handled above)
        offset, digits = _first_long_integer(text)
        where = _where(path, text, offset) if line is None else f"{path} line {line}"
        raise InputFileError(
            f"{where} holds an integer of {digits} digits, over the 4300 that Python reads; fix or drop that record"
        ) from None


def load_json_list(path: Path, expected: str) -> list:
    """A non-empty JSON list from ``path``."""
    items = parse_json(read_text(path, expected), path, expected)
    if not isinstance(items, list) or not items:
        shape = "an empty list" if isinstance(items, list) else f"a JSON {type(items).__name__}, not a list"
        raise InputFileError(f"{path} holds no records (it is {shape}); expected {expected}")
    return items


def load_jsonl(path: Path, expected: str) -> list:
    """The records of a JSONL file (blank lines skipped); at least one."""
    records = [
        parse_json(text, path, expected, line=number)
        for number, text in enumerate(read_text(path, expected).splitlines(), start=1)
        if text.strip()
    ]
    if not records:
        raise InputFileError(f"{path} holds no records; expected {expected}")
    return records
