"""CountDown with a search trace (``countdown_trace``): responses whose length depends on how hard the problem is.

The quickstart's easy CountDown answers in 10-15 tokens, so every aggregator weighs responses almost alike. Here the
response is a search: the model writes candidate paths one per line, in a fixed order, until one reaches the target,
then gives that candidate as the answer::

    Use 3 5 7 to make 56.          (prompt, as in the easy variant)

    3+5=8,8+7=15
    3+5=8,8-7=1
    3+5=8,8*7=56
    <answer>(3+5)*7</answer>

The search order (:func:`candidates`) is fixed by the numbers in prompt order: the first pair (a, b), then (a, c),
then (b, c); for each pair the operators ``+ - * /`` and then, on that value and the remaining number, ``+ - * /``
again. ``-`` and ``/`` always put the larger operand first, a step is skipped when it would divide inexactly or by
zero, so every intermediate is a non-negative integer. A problem's *depth* is the 1-based position of the first
candidate that reaches its target; its trace has exactly ``depth`` lines, so harder problems take longer responses.

Instances: the depth is drawn log-uniformly in ``1..max_depth`` (28; so short and long traces are both common), then
3 numbers uniform in ``1..10`` are drawn until the candidate at that depth has a value in ``1..max_target`` that no
earlier candidate reaches (the trace would stop there); that value is the target. Deterministic for a
seed; test instances are unique and never share (numbers in prompt order, target) with train.

    python -m deltal.data.countdown_trace --out .deltal/data/countdown_trace --train-size 4096 --test-size 256

Writes verl RL parquet files; the ground truth holds ``target``, ``numbers`` and ``depth``. ``--reward`` picks the
data source and with it the reward (``deltal.rewards.countdown_trace``): ``last_line`` (``countdown_trace``) checks
the answer and the last trace line, ``full_trace`` (``countdown_trace_full``) checks every line, so a correct
response's length is set by the problem and RL cannot shorten it, and ``partial_trace``
(``countdown_trace_partial``) adds partial credit for the part of the search written correctly, so that stopping a
deep search early is not free either.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deltal.cli import add_options, option, settings_from
from deltal.data.chatml import chatml_exchange
from deltal.data.rl_format import chat_messages, rl_row, write_parquet

logger = logging.getLogger(__name__)

DATA_SOURCE = "countdown_trace"
# --reward choice -> data source (each data source has its scorer in deltal.rewards.SCORERS).
DATA_SOURCES = {
    "last_line": DATA_SOURCE,
    "full_trace": "countdown_trace_full",
    "partial_trace": "countdown_trace_partial",
}
NUMBER_RANGE = (1, 10)
COUNT = 3
DEFAULT_MAX_DEPTH = 28
DEFAULT_MAX_TARGET = 1000
OPERATORS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
# Consecutive draws that add no new instance before giving up (the requested split exceeds the task space).
MAX_STALLED_DRAWS = 200_000


@dataclass(frozen=True)
class Step:
    """One arithmetic step ``left op right = value`` (for - and / the larger operand is on the left)."""

    left: int
    op: str
    right: int
    value: int

    def text(self) -> str:
        return f"{self.left}{self.op}{self.right}={self.value}"


@dataclass(frozen=True)
class Candidate:
    """One line of the trace: a first step on a pair and a second step combining its value with the third number.

    ``first_on_left`` says whether the first step's value is the left operand of the second step.
    """

    first: Step
    second: Step
    first_on_left: bool

    def line(self) -> str:
        """The trace line, e.g. ``3+5=8,8*7=56``."""
        return f"{self.first.text()},{self.second.text()}"

    def expression(self) -> str:
        """The answer expression with minimal parentheses, e.g. ``(3+5)*7`` or ``10-(3+5)``."""
        inner = f"{self.first.left}{self.first.op}{self.first.right}"
        inner_precedence, outer = _PRECEDENCE[self.first.op], self.second.op
        if self.first_on_left:
            left = inner if inner_precedence >= _PRECEDENCE[outer] else f"({inner})"
            return f"{left}{outer}{self.second.right}"
        bare = inner_precedence > _PRECEDENCE[outer] or (inner_precedence == _PRECEDENCE[outer] and outer in "+*")
        return f"{self.second.left}{outer}{inner if bare else f'({inner})'}"


def apply(a: int, op: str, b: int) -> Step | None:
    """``a op b`` with the larger operand first for - and /; None when the division is inexact or by zero."""
    if op in "-/" and b > a:
        a, b = b, a
    if op == "+":
        return Step(a, op, b, a + b)
    if op == "-":
        return Step(a, op, b, a - b)
    if op == "*":
        return Step(a, op, b, a * b)
    if op == "/":
        return Step(a, op, b, a // b) if b != 0 and a % b == 0 else None
    raise ValueError(f"unknown operator {op!r}; use one of {OPERATORS}")


def candidates(numbers: Sequence[int]) -> list[Candidate]:
    """Every trace line for ``numbers`` (3 non-negative ints, prompt order), in the fixed search order."""
    if len(numbers) != COUNT or any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in numbers):
        raise ValueError(f"the trace search takes exactly {COUNT} non-negative ints, got {list(numbers)!r}")
    a, b, c = numbers
    found = []
    for x, y, z in ((a, b, c), (a, c, b), (b, c, a)):
        for op1 in OPERATORS:
            first = apply(x, op1, y)
            if first is None:
                continue
            for op2 in OPERATORS:
                second = apply(first.value, op2, z)
                if second is None:
                    continue
                # When the two operands are equal, the first step's value is taken as the left one.
                found.append(Candidate(first, second, first_on_left=second.left == first.value))
    return found


def trace(numbers: Sequence[int], target: int) -> list[Candidate] | None:
    """The trace for a problem: the candidates up to and including the first that reaches ``target`` (None if none)."""
    lines = []
    for candidate in candidates(numbers):
        lines.append(candidate)
        if candidate.second.value == target:
            return lines
    return None


def depth(numbers: Sequence[int], target: int) -> int | None:
    """Lines in the problem's trace, or None when the search never reaches ``target``."""
    lines = trace(numbers, target)
    return None if lines is None else len(lines)


def response_text(numbers: Sequence[int], target: int) -> str:
    """The warm-start target response (before the turn-end token): trace lines, then the answer in tags."""
    lines = trace(numbers, target)
    if lines is None:
        raise ValueError(f"the trace search over {list(numbers)} never reaches {target}; draw instances with draw()")
    body = "".join(candidate.line() + "\n" for candidate in lines)
    return f"{body}<answer>{lines[-1].expression()}</answer>"


def prompt_text(numbers: Sequence[int], target: int) -> str:
    """The user turn, e.g. ``Use 3 5 7 to make 56.`` (same wording as the easy variant)."""
    return f"Use {' '.join(str(n) for n in numbers)} to make {target}."


Instance = tuple[tuple[int, ...], int]  # (numbers in prompt order, target)


def draw(rng: random.Random, max_depth: int = DEFAULT_MAX_DEPTH, max_target: int = DEFAULT_MAX_TARGET) -> Instance:
    """One instance whose trace depth is log-uniform in ``1..max_depth`` (see the module docstring)."""
    if max_depth < 1 or max_target < 1:
        raise ValueError(f"max_depth and max_target must be positive, got {max_depth} and {max_target}")
    # Depth first, then numbers redrawn until one of their candidates first reaches a target at that depth: drawing
    # the numbers first would favour shallow depths (common values are reached early).
    wanted = math.floor(math.exp(rng.uniform(0.0, math.log(max_depth + 1))))  # log-uniform in 1..max_depth
    while True:
        numbers = tuple(rng.randint(*NUMBER_RANGE) for _ in range(COUNT))
        options = candidates(numbers)
        if wanted > len(options):
            continue
        target = options[wanted - 1].second.value
        if not 1 <= target <= max_target:
            continue
        if all(candidate.second.value != target for candidate in options[: wanted - 1]):
            return numbers, target


def instance_key(numbers: Sequence[int], target: int) -> tuple[tuple[int, ...], int]:
    """Problem identity for split disjointness; the prompt order matters here (it fixes the search order)."""
    return tuple(numbers), int(target)


def generate(
    count: int, rng: random.Random, exclude: set, unique: bool, max_depth: int, max_target: int
) -> list[Instance]:
    """``count`` instances whose keys avoid ``exclude`` (and each other when ``unique``); adds their keys to it."""
    instances: list[Instance] = []
    stalled = 0
    while len(instances) < count:
        numbers, target = draw(rng, max_depth, max_target)
        key = instance_key(numbers, target)
        if key in exclude:
            stalled += 1
            if stalled > MAX_STALLED_DRAWS:
                raise ValueError(f"found only {len(instances)} new instances; lower --train-size/--test-size")
            continue
        stalled = 0
        if unique:
            exclude.add(key)
        instances.append((numbers, target))
    return instances


def rows_for(instances: Sequence[Instance], split: str, data_source: str = DATA_SOURCE) -> Iterator[dict]:
    """verl RL rows for one split (ground truth: target, numbers, depth)."""
    for index, (numbers, target) in enumerate(instances):
        truth = {"target": int(target), "numbers": [int(n) for n in numbers], "depth": depth(numbers, target)}
        yield rl_row(data_source, chat_messages(prompt_text(numbers, target)), "math", truth, split, index)


def build(
    out: str | Path,
    train_size: int = 4096,
    test_size: int = 256,
    seed: int = 0,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_target: int = DEFAULT_MAX_TARGET,
    reward: str = "last_line",
) -> tuple[Path, Path]:
    """Write ``out/train.parquet`` and ``out/test.parquet``; returns their paths."""
    if train_size < 1 or test_size < 1:
        raise ValueError(f"--train-size and --test-size must be positive, got {train_size} and {test_size}")
    if reward not in DATA_SOURCES:
        raise ValueError(f"unknown reward {reward!r}; choose one of {sorted(DATA_SOURCES)}")
    rng = random.Random(seed)
    seen: set = set()
    test = generate(test_size, rng, seen, unique=True, max_depth=max_depth, max_target=max_target)
    train = generate(train_size, rng, seen, unique=False, max_depth=max_depth, max_target=max_target)
    out = Path(out)
    return (
        write_parquet(rows_for(train, "train", DATA_SOURCES[reward]), out / "train.parquet"),
        write_parquet(rows_for(test, "test", DATA_SOURCES[reward]), out / "test.parquet"),
    )


def corpus(seed: int, count: int, max_depth: int = DEFAULT_MAX_DEPTH) -> list[str]:
    """Chat-formatted trace dialogues for training the tiny tokenizer (``deltal.cpu.assets.build_tiny_assets``)."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        numbers, target = draw(rng, max_depth)
        texts.append(chatml_exchange(prompt_text(numbers, target), response_text(numbers, target)))
    return texts


@dataclass(frozen=True, kw_only=True)
class CountdownTraceSettings:
    """Options of ``python -m deltal.data.countdown_trace``."""

    out: str
    """Folder to write train.parquet and test.parquet into."""
    train_size: int = 4096
    """Number of training problems."""
    test_size: int = 256
    """Number of held-out problems."""
    seed: int = 0
    """Seed of the generator."""
    max_depth: int = DEFAULT_MAX_DEPTH
    """Longest trace, in lines (the depth is drawn log-uniformly in 1..max_depth)."""
    max_target: int = DEFAULT_MAX_TARGET
    """Largest target."""
    reward: str = field(default="last_line", metadata=option(choices=tuple(DATA_SOURCES)))
    """Which reward scores the data: last_line checks the answer and the last trace line (countdown_trace),
    full_trace every line of the search (countdown_trace_full), partial_trace too, with partial credit for the
    part of the search written correctly (countdown_trace_partial)."""


def build_parser() -> argparse.ArgumentParser:
    """The builder's parser: one flag per CountdownTraceSettings field, helped by its docstring."""
    parser = argparse.ArgumentParser(prog="python -m deltal.data.countdown_trace", description=__doc__.splitlines()[0])
    return add_options(parser, CountdownTraceSettings)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the files; bad input exits 2 with argparse's usage message."""
    parser = build_parser()
    settings = settings_from(parser.parse_args(argv), CountdownTraceSettings)
    try:
        paths = build(
            settings.out,
            settings.train_size,
            settings.test_size,
            settings.seed,
            settings.max_depth,
            settings.max_target,
            settings.reward,
        )
    except ValueError as error:
        parser.error(str(error))
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
