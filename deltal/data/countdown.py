"""CountDown dataset builder: verl RL parquet files (``train.parquet``, ``test.parquet``) with no downloads.

    python -m deltal.data.countdown --out data/countdown                      # generated, base-model prompt
    python -m deltal.data.countdown --out data/countdown --source countdown_tasks_3to4.parquet
    python -m deltal.data.countdown --out data/countdown_easy --variant easy  # CPU quickstart
    python -m deltal.data.countdown --out data/countdown --prompt-template my_prompt.txt   # your exact prompt text

Instances
---------
- Generated (``--variant standard``, no ``--source``): a stand-in for the public "Countdown-Tasks-3to4" dataset
  (Jiayi-Pan on the Hugging Face hub). Its card documents only the schema (``target``: int, ``nums``: list of int,
  ~490k rows). The generator it descends from (Stream-of-Search's ``countdown_generate.py``: ``max_target=100``,
  3 to 4 start numbers) draws the target uniformly from 10..100 and then draws numbers uniformly from 1..99 until
  the target is reachable. deltal does the same: count uniform in {3, 4}, target uniform in 10..100, numbers
  uniform in 1..99, redrawn until ``deltal.data.solver.is_solvable`` proves the target reachable with exact
  rational arithmetic (each number once, ``+ - * /``). One difference: intermediates may be fractional or negative
  here (the reward accepts such answers), so a few more number sets count as solvable than under integer-only rules.
- Ingested (``--source PATH``): a local copy of that dataset as parquet, a JSON list or JSONL, with rows holding
  ``target`` (int) and ``nums`` (list of int). The first ``--train-size`` rows become train and the next
  ``--test-size`` rows test (the TinyZero / paper split). Ingested rows are not re-solved. ``--train-size``
  defaults to 327,680 when ingesting (the reference repository's builder default; its set-up script passes 32,768)
  and to 32,768 when generating.
- Easy (``--variant easy``, CPU quickstart; docs/cpu-quickstart-sizing.md §2): 3 numbers uniform in 1..10,
  target = a random expression tree over them (random order, shape and operators), kept when it is an integer in
  1..100, so it is always reachable. Data source ``countdown_easy`` (scored by the strict reward), prompt
  ``Use 7 1 5 to make 35.`` as a single chat user turn.

Splits are deterministic for a seed. Generated test instances are drawn first and are unique; train instances
never share a (sorted numbers, target) key with test (train may repeat an instance: the easy space holds only a
few thousand distinct problems).

Prompts
-------
- ``--template base`` (default for standard): the paper trains base models on a plain-text TinyZero-style prompt
  ending in ``Assistant: Let me solve this step by step.\\n<think>``. It is stored as one user message and must be
  rendered verbatim: launch with ``deltal.data.rl_format.RAW_PROMPT_TEMPLATE_OVERRIDE`` (see that module).
- ``--template instruct``: a system turn plus a user turn, rendered by the model's own chat template.
- ``--prompt-template FILE``: the prompt is the text of FILE with ``{numbers}`` (the list, e.g. ``[3, 7, 25]``)
  and ``{target}`` replaced, stored as one user message that the launch scripts render verbatim. Any prompt,
  e.g. the reference repository's, can be reproduced exactly this way. Nothing else in the file is interpreted.
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from deltal.data.input_files import load_json_list, load_jsonl, read_text
from deltal.data.rl_format import chat_messages, raw_prompt_messages, rl_row, write_parquet
from deltal.data.solver import is_solvable

logger = logging.getLogger(__name__)

Instance = tuple[tuple[int, ...], int]  # (numbers in prompt order, target)

STANDARD_COUNTS = (3, 4)
STANDARD_NUMBERS = (1, 99)
STANDARD_TARGETS = (10, 100)
EASY_COUNT = 3
EASY_NUMBERS = (1, 10)
EASY_TARGETS = (1, 100)
DATA_SOURCES = {"standard": "countdown", "easy": "countdown_easy"}
SOURCE_FORMAT = (
    "a parquet file, a JSON list or a JSONL file whose rows hold 'target' (int) and 'nums' (list of int), "
    "e.g. a local copy of the Countdown-Tasks-3to4 dataset"
)
# Default training sizes: the reference's ingest size (its builder's default), and the generated stand-in's size.
INGEST_TRAIN_SIZE = 327_680
GENERATED_TRAIN_SIZE = 32_768
PROMPT_PLACEHOLDERS = ("{numbers}", "{target}")
# Consecutive draws that add no new instance before giving up (the requested split exceeds the task space).
MAX_STALLED_DRAWS = 200_000

_SYSTEM_PROMPT = "You are a careful assistant. Reason through the problem step by step first, then give the answer."
_TASK_TEXT = (
    "Using the numbers {numbers}, create an equation that equals {target}. Use each number exactly once, with "
    "only +, -, * and / and parentheses. Show your work in <think> </think> tags. And return the final answer in "
    "<answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)


def instance_key(numbers: Sequence[int], target: int) -> tuple[tuple[int, ...], int]:
    """The identity of a problem, independent of the order its numbers are shown in."""
    return tuple(sorted(numbers)), int(target)


def base_prompt(numbers: Sequence[int], target: int) -> str:
    """Plain-text prompt for base models (no chat template); the model continues after ``<think>``."""
    return (
        "A conversation between User and Assistant. The User poses a problem, and the Assistant first works it out "
        "in its head and then gives the User the answer.\n"
        f"User: {_TASK_TEXT.format(numbers=list(numbers), target=target)}\n"
        "Assistant: Let me solve this step by step.\n<think>"
    )


def instruct_messages(numbers: Sequence[int], target: int) -> list[dict[str, str]]:
    """Chat messages (system + user) for instruct models."""
    return chat_messages(_TASK_TEXT.format(numbers=list(numbers), target=target), system=_SYSTEM_PROMPT)


def easy_prompt(numbers: Sequence[int], target: int) -> str:
    """The short easy-variant user turn, e.g. ``Use 7 1 5 to make 35.``"""
    return f"Use {' '.join(str(n) for n in numbers)} to make {target}."


def read_prompt_template(path: str | Path) -> str:
    """The text of a ``--prompt-template`` file; it must hold every placeholder of PROMPT_PLACEHOLDERS."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--prompt-template {path} does not exist")
    text = path.read_text(encoding="utf-8")
    missing = [placeholder for placeholder in PROMPT_PLACEHOLDERS if placeholder not in text]
    if missing:
        raise ValueError(
            f"--prompt-template {path} lacks {missing}: write the prompt with {{numbers}} and {{target}} where the "
            "problem's numbers and target go"
        )
    return text


def fill_prompt_template(text: str, numbers: Sequence[int], target: int) -> str:
    """A user-supplied prompt with its placeholders replaced (plain substitution: other braces stay as they are)."""
    return text.replace("{numbers}", str(list(numbers))).replace("{target}", str(target))


def draw_standard(rng: random.Random) -> Instance:
    """One solvable instance of the Countdown-Tasks-3to4 distribution (target first, numbers redrawn until solvable)."""
    count = rng.choice(STANDARD_COUNTS)
    target = rng.randint(*STANDARD_TARGETS)
    while True:
        numbers = tuple(rng.randint(*STANDARD_NUMBERS) for _ in range(count))
        if is_solvable(numbers, target):
            return numbers, target


def _random_tree_value(values: list[Fraction], rng: random.Random) -> Fraction | None:
    # Fold the numbers into one random binary tree; None when it divides by zero.
    values = values[:]
    while len(values) > 1:
        i, j = rng.sample(range(len(values)), 2)
        a, b = values[i], values[j]
        op = rng.choice("+-*/")
        if op == "/" and b == 0:
            return None
        result = {"+": a + b, "-": a - b, "*": a * b}[op] if op != "/" else a / b
        values = [v for k, v in enumerate(values) if k not in (i, j)] + [result]
    return values[0]


def draw_easy(rng: random.Random) -> Instance:
    """One easy instance: 3 numbers in 1..10 and the integer value (1..100) of a random expression over them."""
    while True:
        numbers = tuple(rng.randint(*EASY_NUMBERS) for _ in range(EASY_COUNT))
        value = _random_tree_value([Fraction(n) for n in numbers], rng)
        if value is not None and value.denominator == 1 and EASY_TARGETS[0] <= value <= EASY_TARGETS[1]:
            return numbers, int(value)


def generate_instances(
    count: int, rng: random.Random, variant: str, exclude: set, unique: bool, desc: str
) -> list[Instance]:
    """Draw ``count`` instances whose keys avoid ``exclude`` (and each other when ``unique``); adds keys to it."""
    draw = {"standard": draw_standard, "easy": draw_easy}[variant]
    instances: list[Instance] = []
    stalled = 0
    with tqdm(total=count, desc=desc, unit="problem") as progress:
        while len(instances) < count:
            numbers, target = draw(rng)
            key = instance_key(numbers, target)
            if key in exclude:
                stalled += 1
                if stalled > MAX_STALLED_DRAWS:
                    raise ValueError(
                        f"found only {len(instances)} new {variant} instances for {desc} after {stalled} draws: the "
                        f"task space is too small for the requested size; lower --train-size/--test-size"
                    )
                continue
            stalled = 0
            if unique:
                exclude.add(key)
            instances.append((numbers, target))
            progress.update(1)
    return instances


def _source_error(path: Path, problem: str) -> ValueError:
    return ValueError(f"--source {path}: {problem}. Expected {SOURCE_FORMAT}.")


def _read_source_rows(path: Path) -> list:
    if not path.is_file():
        raise FileNotFoundError(f"--source {path} does not exist or is not a file. Expected {SOURCE_FORMAT}.")
    if path.suffix == ".parquet":
        try:
            names = pq.read_schema(path).names
            missing = [column for column in ("target", "nums") if column not in names]
            if missing:
                raise _source_error(path, f"columns {missing} are missing (found {names})")
            return pq.read_table(path, columns=["target", "nums"]).to_pylist()
        except (pa.ArrowException, OSError) as error:
            raise _source_error(path, f"it is not a readable parquet file ({error})") from None
    if path.suffix not in (".json", ".jsonl"):
        raise _source_error(path, f"unknown file type {path.suffix!r}")
    text = read_text(path, SOURCE_FORMAT)
    if text.lstrip().startswith("["):
        return load_json_list(path, SOURCE_FORMAT)
    return load_jsonl(path, SOURCE_FORMAT)


def _is_int64(value: object) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


def _source_instance(row: object, position: int, path: Path) -> Instance:
    if not isinstance(row, dict) or "target" not in row or "nums" not in row:
        raise _source_error(path, f"row {position} lacks 'target' or 'nums': {row!r:.200}")
    target, numbers = row["target"], row["nums"]
    valid_numbers = isinstance(numbers, list) and numbers and all(_is_int64(n) for n in numbers)
    if not _is_int64(target) or not valid_numbers:
        raise _source_error(
            path,
            f"row {position} has target={target!r:.50}, nums={numbers!r:.100}: both must be integers of at most 64 "
            "bits and nums a non-empty list",
        )
    return tuple(numbers), target


def load_source(path: str | Path, train_size: int, test_size: int) -> tuple[list[Instance], list[Instance]]:
    """The first ``train_size`` rows of a local Countdown-Tasks file as train, the next ``test_size`` as test."""
    path = Path(path)
    rows = _read_source_rows(path)
    needed = train_size + test_size
    if len(rows) < needed:
        raise _source_error(path, f"it has {len(rows)} rows but --train-size + --test-size needs {needed}")
    instances = [_source_instance(row, i, path) for i, row in enumerate(rows[:needed])]
    return instances[:train_size], instances[train_size:]


def rows_for(
    instances: Sequence[Instance], split: str, variant: str, template: str, prompt_template: str | None = None
) -> Iterator[dict]:
    """verl RL rows for one split; ``prompt_template`` (a --prompt-template text) replaces the built-in prompts."""
    for index, (numbers, target) in enumerate(instances):
        if prompt_template is not None:
            prompt = raw_prompt_messages(fill_prompt_template(prompt_template, numbers, target))
        elif variant == "easy":
            prompt = chat_messages(easy_prompt(numbers, target))
        elif template == "base":
            prompt = raw_prompt_messages(base_prompt(numbers, target))
        else:
            prompt = instruct_messages(numbers, target)
        ground_truth = {"target": int(target), "numbers": [int(n) for n in numbers]}
        yield rl_row(DATA_SOURCES[variant], prompt, "math", ground_truth, split, index)


def resolve_template(variant: str, template: str | None) -> str:
    """The prompt template for a variant; the easy variant only has a chat (instruct) prompt."""
    if variant not in DATA_SOURCES:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(DATA_SOURCES)}")
    if variant == "easy":
        if template == "base":
            raise ValueError("--variant easy uses a short chat prompt; drop --template or pass --template instruct")
        return "instruct"
    template = template or "base"
    if template not in ("base", "instruct"):
        raise ValueError(f"unknown template {template!r}; choose base or instruct")
    return template


def build(
    out: str | Path,
    train_size: int | None = None,
    test_size: int = 1024,
    template: str | None = None,
    seed: int = 42,
    source: str | Path | None = None,
    variant: str = "standard",
    prompt_template: str | Path | None = None,
) -> tuple[Path, Path]:
    """Write ``out/train.parquet`` and ``out/test.parquet``; returns their paths. ``train_size`` None: 327,680 rows
    when ingesting ``source``, 32,768 when generating."""
    template = resolve_template(variant, template)
    if train_size is None:
        train_size = INGEST_TRAIN_SIZE if source is not None else GENERATED_TRAIN_SIZE
    prompt_text = read_prompt_template(prompt_template) if prompt_template is not None else None
    if train_size < 1 or test_size < 1:
        raise ValueError(f"--train-size and --test-size must be positive, got {train_size} and {test_size}")
    if source is not None:
        if variant != "standard":
            raise ValueError("--source ingests the standard Countdown-Tasks data; drop --variant easy")
        train, test = load_source(source, train_size, test_size)
    else:
        rng = random.Random(seed)
        seen: set = set()
        test = generate_instances(test_size, rng, variant, seen, unique=True, desc="test")
        train = generate_instances(train_size, rng, variant, seen, unique=False, desc="train")
    out = Path(out)
    train_path = write_parquet(rows_for(train, "train", variant, template, prompt_text), out / "train.parquet")
    test_path = write_parquet(rows_for(test, "test", variant, template, prompt_text), out / "test.parquet")
    return train_path, test_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deltal.data.countdown",
        description="Build CountDown train/test parquet files in verl's RL format (no downloads).",
    )
    parser.add_argument("--out", required=True, help="folder to write train.parquet and test.parquet into")
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help=f"number of training problems (default {INGEST_TRAIN_SIZE} with --source, {GENERATED_TRAIN_SIZE} else)",
    )
    parser.add_argument("--test-size", type=int, default=1024, help="number of held-out problems")
    parser.add_argument(
        "--template",
        choices=("base", "instruct"),
        default=None,
        help="base: plain-text TinyZero-style prompt for base models, to be rendered with "
        "RAW_PROMPT_CHAT_TEMPLATE (default for standard); instruct: system+user chat messages "
        "(the only choice for --variant easy)",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the generator (ignored with --source)")
    parser.add_argument("--source", default=None, help=f"ingest instead of generating: {SOURCE_FORMAT}")
    parser.add_argument(
        "--variant",
        choices=tuple(DATA_SOURCES),
        default="standard",
        help="standard: 3-4 numbers in 1..99, target 10..100 (data_source countdown); "
        "easy: 3 numbers in 1..10, target 1..100, short prompt (data_source countdown_easy, strict reward)",
    )
    parser.add_argument(
        "--prompt-template",
        default=None,
        metavar="FILE",
        help="use the text of FILE as the prompt, with {numbers} and {target} filled in (rendered verbatim)",
    )
    args = parser.parse_args(argv)
    try:
        paths = build(
            args.out,
            args.train_size,
            args.test_size,
            args.template,
            args.seed,
            args.source,
            args.variant,
            args.prompt_template,
        )
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    for path in paths:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
