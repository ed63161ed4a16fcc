"""Exact Avg@k and Pass@k from verl's validation sample dumps, where verl's logged ``best@k`` is only a bootstrap.

verl 0.9.1 logs ``val-core/<data_source>/<var>/best@k/mean`` by drawing k of the N samples of each prompt *with
replacement* (``bootstrap_metric``), so one correct sample out of 8 reads as about 1 - (7/8)^8 = 0.66 rather than 1:
Pass@8 taken from it is biased low. With ``trainer.validation_data_dir=DIR`` verl also writes every validation
sample to ``DIR/<global_step>.jsonl``, one JSON object per line with ``input`` (prompt text), ``output``, ``gts``,
``score``, ``step``, ``uid`` (``{prompt uid}_{session}_{turn}``) and each per-sample reward extra; deltal's reward
adds ``data_source`` and the task scorers return ``acc``. From these this module computes, per step and data source:

* Avg@k: the mean of a question's samples' ``acc`` (``score`` when no sample has ``acc``), averaged over questions;
* Pass@k: the unbiased estimator 1 - C(n-c, k)/C(n, k) per question (n samples, c correct; "any of the k correct"
  when n == k), averaged over questions; a sample is correct when its value is at least 1 (``acc`` is 0 or 1);
* the number of questions.

Questions are told apart by the prompt uid when lines carry verl's ``uid`` (so a prompt that appears twice in a test
set counts twice, as in verl's own metrics), else by the prompt text. Rows go into the tidy table as
``exact/<data_source>/<var>/mean@k``, ``exact/<data_source>/<var>/pass@k`` (every k up to the smallest sample count)
and ``exact/<data_source>/questions``; `deltal.analysis.metrics` prefers them to verl's keys.
Command line: ``python -m deltal.analysis export LOGS... --generations RUN=DIR --out runs.csv``.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from deltal.analysis.logs import tidy_frame

logger = logging.getLogger(__name__)

EXACT_PREFIX = "exact"
DUMP_SETTING = "trainer.validation_data_dir=DIR"
REQUIRED_KEYS = ("input", "score", "step", "data_source")
# Binary rewards: acc is 0/1 (deltal's scorers); with the score fallback, CountDown's 0.1 format credit is not correct.
CORRECT_THRESHOLD = 1.0
_UID_PATTERN = re.compile(r"^(?P<prompt>.+)_(?P<session>\d+)_(?P<turn>\d+)$")


@dataclass
class SourceTally:
    """The samples of one (step, data_source): question -> sample id -> value, and which variable each used."""

    questions: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    lines_with_acc: int = 0
    lines_with_score_only: int = 0

    @property
    def variable(self) -> str:
        return "acc" if self.lines_with_acc else "score"


@dataclass(frozen=True)
class ExactScore:
    """Exact metrics of one (step, data_source) at k samples per question."""

    step: int
    data_source: str
    variable: str  # "acc", or "score" when the reward returned no acc
    k: int
    avg: float
    pass_at_k: float
    questions: int
    min_samples: int
    max_samples: int


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased Pass@k of one question from n samples with c correct: 1 - C(n-c, k) / C(n, k).

    It is the chance that k samples drawn without replacement from the n include a correct one; for n == k it is
    1 when any sample is correct, else 0.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= correct <= samples, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(
            f"Pass@{k} needs at least k samples per question, but a question has n={n}; pass --k {n} or lower, "
            f"or validate with actor_rollout_ref.rollout.val_kwargs.n={k}"
        )
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)  # exact integers; one division


def find_dump_files(path: str | Path) -> list[Path]:
    """``DIR/<step>.jsonl`` files of a dump directory in step order, or ``[path]`` for a single file."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist; pass the folder given to {DUMP_SETTING} (or one file in it)")
    files = sorted((child for child in path.glob("*.jsonl") if child.stem.isdigit()), key=lambda p: int(p.stem))
    if not files:
        raise FileNotFoundError(
            f"no <step>.jsonl under {path}; verl writes them there when training runs with {DUMP_SETTING}"
        )
    return files


def _malformed(where: str, problem: str) -> ValueError:
    return ValueError(
        f"{where}: {problem}. Expected a verl validation dump: one JSON object per sample with "
        f"{', '.join(REQUIRED_KEYS)} (and acc), as written to DIR/<step>.jsonl with {DUMP_SETTING} and deltal's reward "
        "(pkg://deltal.rewards), which adds data_source"
    )


def _number(value: object, where: str, key: str) -> float:
    if isinstance(value, bool | int | float) and math.isfinite(float(value)):
        return float(value)
    raise _malformed(where, f"{key}={value!r} is not a finite number")


def _sample_keys(record: dict, where: str) -> tuple[str, str]:
    """(question key, sample key): prompt uid and session from verl's uid, else the prompt text and the line."""
    match = _UID_PATTERN.match(str(record.get("uid", "")))
    if match is not None:
        # All turns of a session carry its final score; one sample per session.
        return f"uid:{match['prompt']}", match["session"]
    return f"input:{record['input']}", where


def tally_dump(path: str | Path) -> dict[tuple[int, str], SourceTally]:
    """Read a dump directory or file into per-(step, data_source) sample values (outputs are not kept)."""
    tallies: dict[tuple[int, str], SourceTally] = defaultdict(SourceTally)
    files = find_dump_files(path)
    for file in tqdm(files, desc=f"validation dumps in {Path(path).name}", unit="file", disable=len(files) < 4):
        with file.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{file}:{number}"
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise _malformed(
                        where, f"not valid JSON ({err}); a run killed while writing leaves a cut line"
                    ) from err
                if not isinstance(record, dict):
                    raise _malformed(where, "not a JSON object")
                missing = [key for key in REQUIRED_KEYS if key not in record]
                if missing:
                    raise _malformed(where, f"missing {missing}")
                step = record["step"]
                if isinstance(step, bool) or not isinstance(step, int):
                    raise _malformed(where, f"step={step!r} is not an integer")
                tally = tallies[(step, str(record["data_source"]))]
                if record.get("acc") is not None:
                    value = _number(record["acc"], where, "acc")
                    tally.lines_with_acc += 1
                else:
                    value = _number(record["score"], where, "score")
                    tally.lines_with_score_only += 1
                question, sample = _sample_keys(record, where)
                tally.questions[question][sample] = value
    for (step, source), tally in tallies.items():
        if tally.lines_with_acc and tally.lines_with_score_only:
            raise ValueError(
                f"{path}, step {step}, {source}: {tally.lines_with_acc} samples have acc and "
                f"{tally.lines_with_score_only} do not; Avg/Pass would mix two variables. Re-score with a reward "
                "that returns acc for every sample"
            )
        if tally.variable == "score":
            logger.warning(
                "%s, step %d, %s: no sample has acc; exact metrics use score (correct when >= %g)",
                path,
                step,
                source,
                CORRECT_THRESHOLD,
            )
    return dict(tallies)


def exact_scores(tallies: dict[tuple[int, str], SourceTally], k: int) -> list[ExactScore]:
    """Exact Avg@k and Pass@k of every (step, data_source); raises ValueError when a question has fewer than k."""
    scores = []
    for (step, source), tally in sorted(tallies.items()):
        samples = [list(values.values()) for values in tally.questions.values()]
        counts = [len(values) for values in samples]
        try:
            passes = [
                pass_at_k(len(values), sum(value >= CORRECT_THRESHOLD for value in values), k) for values in samples
            ]
        except ValueError as err:
            raise ValueError(f"step {step}, {source}: {err}") from err
        scores.append(
            ExactScore(
                step=step,
                data_source=source,
                variable=tally.variable,
                k=k,
                avg=sum(sum(values) / len(values) for values in samples) / len(samples),
                pass_at_k=sum(passes) / len(passes),
                questions=len(samples),
                min_samples=min(counts),
                max_samples=max(counts),
            )
        )
    return scores


def exact_metric_rows(tallies: dict[tuple[int, str], SourceTally]) -> list[tuple[int, str, float]]:
    """(step, metric, value) rows: mean@k and pass@k for every k up to the smallest sample count, and questions."""
    rows = []
    for (step, source), tally in sorted(tallies.items()):
        counts = [len(values) for values in tally.questions.values()]
        if min(counts) != max(counts):
            logger.warning(
                "step %d, %s: questions have %d to %d samples (failed rollouts?); exact metrics only up to k=%d",
                step,
                source,
                min(counts),
                max(counts),
                min(counts),
            )
        for k in range(1, min(counts) + 1):
            (score,) = exact_scores({(step, source): tally}, k)
            prefix = f"{EXACT_PREFIX}/{source}/{score.variable}"
            rows += [(step, f"{prefix}/mean@{k}", score.avg), (step, f"{prefix}/pass@{k}", score.pass_at_k)]
        rows.append((step, f"{EXACT_PREFIX}/{source}/questions", float(len(counts))))
    return rows


def parse_generation_source(text: str) -> tuple[str, Path]:
    """Parse ``--generations RUN=DIR``: RUN is the run (experiment) name the dump belongs to."""
    run, sep, path = text.partition("=")
    if not sep or not run.strip() or not path.strip():
        raise ValueError(
            f"bad --generations {text!r}; write RUN=DIR, e.g. countdown__delta_l__qwen2.5-3b__seed1="
            "outputs/logs/deltal/countdown__delta_l__qwen2.5-3b__seed1/val_generations"
        )
    return run.strip(), Path(path.strip())


def load_generations(sources: Iterable[tuple[str, str | Path]], metric_filter: str | None = None) -> pd.DataFrame:
    """Tidy rows (see `deltal.analysis.logs.TIDY_COLUMNS`) of exact metrics for each (run, dump dir or file)."""
    rows = []
    seen: set[str] = set()
    for run, path in sources:
        if run in seen:
            raise ValueError(f"run {run!r} is given twice to --generations; pass each run's dump folder once")
        seen.add(run)
        rows += [(run, step, metric, value) for step, metric, value in exact_metric_rows(tally_dump(path))]
    if metric_filter is not None:
        pattern = re.compile(metric_filter)
        rows = [row for row in rows if pattern.search(row[2])]
    if not rows:
        raise ValueError("the validation dumps give no rows (or none match the metric filter)")
    return tidy_frame(rows)
