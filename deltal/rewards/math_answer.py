"""Final-answer extraction for math responses: the content of the last ``\\boxed{...}``, and a conservative
normalisation used to skip the server when the answer is literally the ground truth.

Library module (used by ``deltal.rewards.math``); pure string functions, no I/O.
"""

from __future__ import annotations

import re

# Answers longer than this are not sent: the server parses at most 4000 characters of an answer (it never cuts one,
# since the tail of a long matrix reads as another answer), and its per-string limit must never turn one runaway
# answer into a failed request.
MAX_ANSWER_CHARS = 4000

_BOXED = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# \, \; \: \! and "\ " only change spacing in LaTeX math (but "\\ " is a line break followed by a space)
_SPACING_COMMANDS = re.compile(r"(?<!\\)\\[,;:! ]")
_SIZED_DELIMITERS = re.compile(r"\\(?:left|right)(?![A-Za-z])")  # \left( is (, but keep \leftarrow
_FRACTION_STYLES = re.compile(r"\\[dt]frac(?![A-Za-z])")


def _braced_group(text: str, start: int) -> str | None:
    """Content of the brace group opening at ``text[start]`` (which must be ``{``), or None if it never closes.
    Escaped braces ``\\{`` ``\\}`` (set notation) do not count."""
    depth = 0
    index = start
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2  # skip the escaped character, whatever it is
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index]
        index += 1
    return None


def extract_boxed_answer(text: str) -> str | None:
    """The answer in the LAST ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) of ``text``; None when there is
    none or the last one is cut off (a truncated response has no final answer, and an earlier box is not one)."""
    matches = list(_BOXED.finditer(text))
    if not matches:
        return None
    after = matches[-1].end()
    rest = text[after:]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        content = _braced_group(text, after + len(rest) - len(stripped))
    else:
        # "\boxed 5": TeX takes the next token as the argument; only accept it after a space.
        token = re.match(r"\s+([^\s$]+)", rest)
        content = token.group(1) if token else None
    if content is None:
        return None
    content = content.strip()
    return content or None


def normalize_answer(answer: str) -> str:
    """A canonical spelling that only removes what cannot change the value: surrounding ``$``, whitespace (keeping
    one space between two letters or digits), spacing commands, ``\\left``/``\\right``, ``\\dfrac``/``\\tfrac``
    styles, a trailing full stop. Equal normal forms imply equal answers; different ones prove nothing (the server
    decides those)."""
    text = answer.strip()
    while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
        text = text[1:-1].strip()
    text = _SPACING_COMMANDS.sub("", text)
    text = _SIZED_DELIMITERS.sub("", text)
    text = _FRACTION_STYLES.sub(r"\\frac", text)
    # Whitespace next to a symbol never matters; between two letters or digits it may ("2 3", "\\pi r"): keep one.
    text = re.sub(r"\s+(?![0-9A-Za-z])|(?<![0-9A-Za-z])\s+", "", text)
    text = re.sub(r"\s+", " ", text)
    return text.rstrip(".")
