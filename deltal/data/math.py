"""Build verl parquet files for the Math task from local copies of its datasets (no downloads).

    python -m deltal.data.math --out data/math --orz-train orz_math_57k_collected.json \\
        --math500 math500.json --aime2024 aime2024.json --amc amc_dir_or.jsonl --minerva minerva.jsonl \\
        [--template base|instruct] [--prompt-template FILE]

Inputs and what each becomes (``data_source`` picks the reward in ``deltal.rewards.SCORERS``):

- ``--orz-train``: Open-Reasoner-Zero training JSON, a list of two-turn conversations
  ``[{"from": "human", "value": question}, {"from": "assistant", "ground_truth": {"value": answer}}]``
  -> ``train.parquet`` (``open_reasoner_zero``).
- ``--math500``, ``--aime2024``: ORZ's evaluation JSON, a list of ``{"prompt": [{"from": "human", "value": q}],
  "final_answer": a}`` (``prompt`` may also be a plain string) -> ``math500.parquet``, ``aime2024.parquet``.
- ``--amc``, ``--minerva``: a saved Hugging Face dataset folder (``datasets.load_from_disk``), a ``.json`` list or a
  ``.jsonl`` file, with a question field (``problem``/``question``/``Problem``/``prompt``) and an answer field
  (``answer``/``final_answer``/``Answer``/``ground_truth``) -> ``amc.parquet``, ``minerva.parquet``.
  The ORZ eval format above is accepted here too.

A record whose answer is NaN or empty is skipped and counted (a warning names the file and the records); any other
bad input stops with exit status 2 and a message naming the file, the record or line, and the rule broken.

``--template base`` (default, the paper's base models) stores an ORZ-style plain-text prompt: reasoning in
``<think>``, then the final answer in ``\\boxed{}``; launch scripts then pass
``deltal.data.rl_format.RAW_PROMPT_TEMPLATE_OVERRIDE``. ``--template instruct`` stores one user chat message.
``--prompt-template FILE`` stores the text of FILE with ``{question}`` replaced by each question (plain
substitution: ``\\boxed{}`` and other braces stay as written), rendered verbatim by the launch scripts; it reproduces
any prompt exactly, e.g. the reference repository's.
"""

from __future__ import annotations

import argparse
import logging
import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from deltal.data.input_files import InputFileError, load_json_list, load_jsonl, read_text
from deltal.data.rl_format import chat_messages, raw_prompt_messages, rl_row, write_parquet

logger = logging.getLogger(__name__)

BASE_TEMPLATE = (
    "A conversation between a User and an Assistant. The User poses a math problem. The Assistant thinks it "
    "through step by step inside <think> </think> tags, then states the result inside <answer> </answer> tags, "
    "writing the final answer in \\boxed{{}}, e.g. <answer> \\boxed{{42}} </answer>.\n"
    "User: {question}\n"
    "Assistant: <think>"
)
INSTRUCT_TEMPLATE = "{question}\n\nSolve the problem step by step and write the final answer in \\boxed{{}}."

QUESTION_FIELDS = ("problem", "question", "Problem", "prompt")
ANSWER_FIELDS = ("answer", "final_answer", "Answer", "ground_truth")

ORZ_TRAIN_FORMAT = (
    'a JSON list of two-turn conversations [{"from": "human", "value": <question>}, '
    '{"from": "assistant", "ground_truth": {"value": <answer>}}] (orz_math_57k_collected.json)'
)
EVAL_FORMAT = (
    'a JSON list of {"prompt": [{"from": "human", "value": <question>}] or <question>, "final_answer": <answer>}, '
    "or records with a question field (" + "/".join(QUESTION_FIELDS) + ") and an answer field ("
    "" + "/".join(ANSWER_FIELDS) + "), as .json, .jsonl or a datasets.save_to_disk folder"
)


# A math input file is missing, unreadable or not in the documented format (the readers' one error type).
MathDataError = InputFileError


def read_prompt_template(path: Path) -> str:
    """The text of a ``--prompt-template`` file; it must hold the ``{question}`` placeholder."""
    if not Path(path).is_file():
        raise MathDataError(f"--prompt-template {path} does not exist")
    text = read_text(Path(path), "a UTF-8 text file holding {question}")
    if "{question}" not in text:
        raise MathDataError(f"--prompt-template {path} lacks {{question}}: write it where each question goes")
    return text


def format_prompt(question: str, template: str, prompt_template: str | None = None) -> list[dict[str, str]]:
    """The verl ``prompt`` messages for one question under the ``base`` or ``instruct`` template, or under the text
    of a ``--prompt-template`` file when one is given."""
    if prompt_template is not None:
        return raw_prompt_messages(prompt_template.replace("{question}", question))
    if template == "base":
        return raw_prompt_messages(BASE_TEMPLATE.format(question=question))
    if template == "instruct":
        return chat_messages(INSTRUCT_TEMPLATE.format(question=question))
    raise ValueError(f"unknown template {template!r}; use 'base' or 'instruct'")


def has_no_answer(answer: Any) -> bool:
    """True for a record whose answer is missing in substance: empty text, or a number that is NaN or infinite (an
    export artifact, e.g. ``NaN`` in ORZ's JSON; written as ground truth it would read "nan"). Such rows are skipped
    and counted, not written."""
    if isinstance(answer, str):
        return not answer.strip()
    return isinstance(answer, float) and not math.isfinite(answer)


def answer_text(answer: Any, where: str) -> str:
    """Ground truth as a non-empty string (AMC stores integers as floats, e.g. 142.0 -> "142")."""
    if isinstance(answer, bool) or not isinstance(answer, (str, numbers.Number)):
        raise MathDataError(f"{where}: the answer must be a string or a number, got {type(answer).__name__}")
    if isinstance(answer, numbers.Real) and float(answer).is_integer():
        answer = int(answer)
    text = str(answer).strip()
    if not text:
        raise MathDataError(f"{where}: the answer is empty")
    return text


def _question_text(question: Any, where: str) -> str:
    if isinstance(question, list):  # ORZ eval: [{"from": "human", "value": q}]; also chat [{"role": "user", ...}]
        user_turns = [
            turn.get("value", turn.get("content"))
            for turn in question
            if isinstance(turn, Mapping) and turn.get("from", turn.get("role")) in ("human", "user")
        ]
        question = user_turns[0] if user_turns else None
    if not isinstance(question, str) or not question.strip():
        raise MathDataError(f"{where}: no question text found")
    return question.strip()


def _first_field(record: Mapping[str, Any], fields: tuple[str, ...]) -> Any:
    return next((record[field] for field in fields if field in record), None)


def read_orz_train(path: Path) -> list[tuple[str, str]]:
    """(question, answer) pairs from Open-Reasoner-Zero's training JSON."""
    items = load_json_list(path, ORZ_TRAIN_FORMAT)
    pairs = []
    skipped = []
    for index, item in enumerate(items):
        where = f"{path} item {index}"
        if not (isinstance(item, list) and len(item) >= 2 and all(isinstance(turn, Mapping) for turn in item[:2])):
            raise MathDataError(f"{where} is not a two-turn conversation; expected {ORZ_TRAIN_FORMAT}")
        human, assistant = item[0], item[1]
        truth = assistant.get("ground_truth")
        if human.get("from") != "human" or not isinstance(truth, Mapping) or "value" not in truth:
            raise MathDataError(
                f"{where} lacks a human question or an assistant ground_truth.value; expected {ORZ_TRAIN_FORMAT}"
            )
        if has_no_answer(truth["value"]):
            skipped.append(index)
            continue
        pairs.append((_question_text(human.get("value"), where), answer_text(truth["value"], where)))
    _report_skipped(path, skipped, len(items))
    return pairs


def read_eval_records(path: Path) -> list[tuple[str, str]]:
    """(question, answer) pairs from an evaluation set in any of the formats named in EVAL_FORMAT."""
    pairs = []
    skipped = []
    records = _load_records(path)
    for index, record in enumerate(records):
        where = f"{path} record {index}"
        if not isinstance(record, Mapping):
            raise MathDataError(f"{where} is a {type(record).__name__}, not an object; expected {EVAL_FORMAT}")
        question, answer = _first_field(record, QUESTION_FIELDS), _first_field(record, ANSWER_FIELDS)
        if question is None or answer is None:
            raise MathDataError(f"{where} has fields {sorted(map(str, record))[:10]}; expected {EVAL_FORMAT}")
        if has_no_answer(answer):
            skipped.append(index)
            continue
        pairs.append((_question_text(question, where), answer_text(answer, where)))
    _report_skipped(path, skipped, len(records))
    return pairs


def _report_skipped(path: Path, skipped: list[int], total: int) -> None:
    if len(skipped) == total:
        raise MathDataError(f"{path}: none of its {total} records has an answer (all empty or NaN)")
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        logger.warning(
            "%s: skipped %d of %d records with an empty or NaN answer (records %s)", path, len(skipped), total, shown
        )


def _load_records(path: Path) -> list:
    if path.is_dir():
        import datasets  # only for saved Hugging Face datasets; a heavy import the JSON paths do not need

        try:
            records = list(datasets.load_from_disk(str(path)))
        except (OSError, ValueError) as error:
            raise MathDataError(
                f"{path} is not a datasets.save_to_disk folder ({error}); expected {EVAL_FORMAT}"
            ) from error
        if not records:
            raise MathDataError(f"{path} holds no records; expected {EVAL_FORMAT}")
        return records
    if path.suffix == ".jsonl":
        return load_jsonl(path, EVAL_FORMAT)
    return load_json_list(path, EVAL_FORMAT)


def build_rows(
    pairs: Iterable[tuple[str, str]],
    data_source: str,
    split: str,
    template: str,
    total: int | None = None,
    prompt_template: str | None = None,
) -> list[dict[str, Any]]:
    """verl RL rows (prompt, ground truth, data_source) for (question, answer) pairs."""
    return [
        rl_row(
            data_source=data_source,
            prompt=format_prompt(question, template, prompt_template),
            ability="math",
            ground_truth=answer,
            split=split,
            index=index,
            extra_info={"question": question},
        )
        for index, (question, answer) in enumerate(tqdm(pairs, total=total, desc=data_source, unit="row"))
    ]


# Evaluation data_source -> reader; each is written to <data_source>.parquet and has a --<data_source> option.
EVAL_SETS: dict[str, Callable[[Path], list[tuple[str, str]]]] = {
    "math500": read_eval_records,
    "aime2024": read_eval_records,
    "amc": read_eval_records,
    "minerva": read_eval_records,
}


def build(
    out: Path,
    orz_train: Path,
    eval_paths: Mapping[str, Path | None],
    template: str = "base",
    prompt_template: Path | None = None,
) -> list[Path]:
    """Write train.parquet and one parquet per given evaluation set under ``out``; returns the paths written."""
    prompt_text = read_prompt_template(prompt_template) if prompt_template is not None else None
    train_pairs = read_orz_train(orz_train)
    written = [
        write_parquet(
            build_rows(train_pairs, "open_reasoner_zero", "train", template, len(train_pairs), prompt_text),
            out / "train.parquet",
        )
    ]
    for data_source, path in eval_paths.items():
        if path is None:
            continue
        pairs = EVAL_SETS[data_source](path)
        written.append(
            write_parquet(
                build_rows(pairs, data_source, "test", template, len(pairs), prompt_text),
                out / f"{data_source}.parquet",
            )
        )
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for train.parquet and the eval parquet files")
    parser.add_argument("--orz-train", type=Path, required=True, help="Open-Reasoner-Zero training JSON")
    for name in EVAL_SETS:
        parser.add_argument(f"--{name}", type=Path, default=None, help=f"{name} evaluation set (optional)")
    parser.add_argument("--template", choices=("base", "instruct"), default="base", help="prompt style")
    parser.add_argument(
        "--prompt-template",
        type=Path,
        default=None,
        metavar="FILE",
        help="use the text of FILE as the prompt, with {question} filled in (rendered verbatim)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    eval_paths = {name: getattr(args, name) for name in EVAL_SETS}
    try:
        written = build(args.out, args.orz_train, eval_paths, args.template, args.prompt_template)
    except InputFileError as error:
        parser.exit(2, f"deltal.data.math: {error}\n")
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
