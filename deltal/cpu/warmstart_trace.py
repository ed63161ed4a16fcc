"""Tiny model and supervised warm start for the ``countdown_trace`` task (``deltal.data.countdown_trace``).

Differences from the easy-CountDown warm start (``deltal.cpu.warmstart``): the tokenizer is trained on trace
dialogues, the model's context is 512 positions (a trace of 24 lines plus its prompt takes ~330 tokens), and each
training target is the whole search trace followed by the answer, so the model learns to write candidates one per
line and to stop when one reaches the target. Harder problems (a deeper first hit) therefore get longer responses,
which is what makes the aggregators differ. The loss, optimizer and schedule are those of the easy warm start.

After training it samples one response per held-out problem at temperature 1 and records the strict accuracy and
the response-length percentiles (p10/p50/p90, in tokens, EOS included as verl counts it) in
``deltal_warmstart.json``; a second call with the same settings reuses the directory.

    python -m deltal.cpu.warmstart_trace --assets .deltal/assets/tiny-qwen2-trace-seed0 \\
        --out .deltal/assets/tiny-qwen2-trace-seed0-warm --exclude-parquet .deltal/data/countdown_trace/test.parquet
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from deltal.cli import add_options, settings_from
from deltal.cpu.assets import TinyModelSpec, build_tiny_assets
from deltal.cpu.threads import cpu_threads
from deltal.cpu.warmstart import MANIFEST_NAME, cached_warm_start, read_instances, response_loss, warm_start_manifest
from deltal.data import countdown_trace
from deltal.sampling import SamplingSettings, generate_batch

logger = logging.getLogger(__name__)

# Room for the longest trace (28 lines of ~14 tokens, the answer and EOS: at most ~450 tokens) after a ~22-token prompt.
TRACE_SPEC = TinyModelSpec(max_position_embeddings=512)
TRACE_CORPUS_PROBLEMS = 2000
# Token budget of a response (verl's data.max_response_length): warm-start targets are 26 / 80 / 289 tokens at
# p10 / p50 / p90 and at most ~450 (measured on 2000 drawn problems), so a few of the deepest are dropped from the pool.
DEFAULT_MAX_RESPONSE_LENGTH = 448
Instance = tuple[tuple[int, ...], int]


def build_trace_assets(out_dir: Path, seed: int = 0) -> Path:
    """Tokenizer (trained on trace dialogues) and untrained tiny Qwen2 with a 512-token context, cached."""
    texts = countdown_trace.corpus(seed, TRACE_CORPUS_PROBLEMS)
    return build_tiny_assets(out_dir, seed=seed, spec=TRACE_SPEC, corpus=texts)


@dataclass(frozen=True)
class TraceWarmStartSettings:
    """Supervised stage settings (loss, lr and schedule as in the easy warm start)."""

    steps: int = 500
    batch_size: int = 32  # a trace holds ~10x the tokens of an easy answer, so fewer examples give as many tokens
    lr: float = 1e-3
    warmup_steps: int = 50
    seed: int = 0
    problem_pool: int = 4000  # distinct training problems drawn up front
    eval_problems: int = 256  # held-out problems for the accuracy and length figures
    max_response_length: int = DEFAULT_MAX_RESPONSE_LENGTH


def prompt_ids(tokenizer, numbers: Sequence[int], target: int) -> list[int]:
    """Token ids of the chat prompt exactly as verl renders it (chat template + generation prompt)."""
    messages = [{"role": "user", "content": countdown_trace.prompt_text(numbers, target)}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


def training_pool(
    tokenizer, count: int, rng: random.Random, exclude: Sequence[Instance], max_response_length: int
) -> list[tuple[list, list]]:
    """``count`` distinct problems not in ``exclude`` whose response fits: (prompt ids, response ids + EOS) each."""
    excluded = {countdown_trace.instance_key(numbers, target) for numbers, target in exclude}
    pool: dict[tuple, tuple[list, list]] = {}
    stalled = 0
    while len(pool) < count and stalled < 20_000:
        numbers, target = countdown_trace.draw(rng)
        key = countdown_trace.instance_key(numbers, target)
        if key in excluded or key in pool:
            stalled += 1
            continue
        response = tokenizer.encode(countdown_trace.response_text(numbers, target), add_special_tokens=False)
        if len(response) >= max_response_length:
            stalled += 1  # the model must see EOS within the budget; a small budget leaves few problems
            continue
        stalled = 0
        pool[key] = (prompt_ids(tokenizer, numbers, target), response + [tokenizer.eos_token_id])
    if not pool:
        raise ValueError("No trace problem fits: all are held out or longer than the budget; raise the budget.")
    return list(pool.values())


def length_buckets(pool: Sequence[tuple[list, list]], size: int) -> list[list[tuple[list, list]]]:
    """The pool sorted by length and cut into equal buckets of ``size`` examples (the remainder is dropped).

    A batch drawn from one bucket pads to a similar length: traces run from ~25 to ~450 tokens, so a batch drawn
    from the whole pool would pad every row to ~400 and cost ~3x the tokens. Picking the bucket uniformly and the
    examples uniformly within it keeps every example equally likely.
    """
    ordered = sorted(pool, key=lambda example: len(example[0]) + len(example[1]))
    buckets = [list(ordered[start : start + size]) for start in range(0, len(ordered) - size + 1, size)]
    if not buckets:
        raise ValueError(f"the pool has {len(pool)} examples, fewer than one bucket of {size}; draw a larger pool")
    return buckets


def _batch(pad_id: int, bucket: Sequence[tuple[list, list]], size: int, rng: random.Random):
    """Right-padded (input_ids, attention_mask, labels), labels -100 outside the response. Each (bs, width)."""
    chosen = [rng.choice(bucket) for _ in range(size)]
    width = max(len(prompt) + len(response) for prompt, response in chosen)
    input_ids = torch.full((size, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((size, width), dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    for row, (prompt, response) in enumerate(chosen):
        sequence = torch.tensor(prompt + response, dtype=torch.long)
        input_ids[row, : len(sequence)] = sequence
        attention_mask[row, : len(sequence)] = 1
        labels[row, len(prompt) : len(sequence)] = sequence[len(prompt) :]
    return input_ids, attention_mask, labels


def train(model, tokenizer, settings: TraceWarmStartSettings, exclude: Sequence[Instance] = ()) -> list[float]:
    """Run the supervised stage on ``model`` in place; return the loss of every step."""
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    pool = training_pool(tokenizer, settings.problem_pool, rng, exclude, settings.max_response_length)
    buckets = length_buckets(pool, min(4 * settings.batch_size, len(pool)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / settings.warmup_steps))
    model.train()
    losses = []
    for _ in tqdm(range(settings.steps), desc="trace warm start", unit="step", mininterval=10):
        loss = response_loss(model, *_batch(tokenizer.pad_token_id, rng.choice(buckets), settings.batch_size, rng))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def sample_and_score(
    model,
    tokenizer,
    problems: Sequence[Instance],
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> list[dict]:
    """One sample per problem: ``{"length", "truncated", "score", "reason", "full_score", "full_reason", "depth"}``.

    ``score``/``reason`` are the last-line reward's (``countdown_trace``), ``full_*`` the full-trace reward's
    (``countdown_trace_full``); ``length`` counts the EOS token as verl's response mask does; a response without EOS
    is truncated and scores 0 under both.
    """
    from deltal.rewards.countdown_trace import compute_score, compute_score_full

    if not problems:
        raise ValueError("No problems to sample.")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    results = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        responses = generate_batch(
            model,
            [prompt_ids(tokenizer, numbers, target) for numbers, target in chunk],
            [max_new_tokens] * len(chunk),
            SamplingSettings(temperature=temperature),
            {tokenizer.eos_token_id},
            tokenizer.pad_token_id,
            generator,
        )
        for (numbers, target), response in zip(chunk, responses, strict=True):
            text = tokenizer.decode(response.token_ids, skip_special_tokens=True)
            truth = {"target": target, "numbers": list(numbers)}
            scored = compute_score(countdown_trace.DATA_SOURCE, text, truth)
            full = compute_score_full(countdown_trace.DATA_SOURCES["full_trace"], text, truth)
            truncated = not response.finished_with_eos
            results.append(
                {
                    "length": len(response.token_ids),
                    "truncated": truncated,
                    "score": 0.0 if truncated else float(scored["score"]),
                    "reason": "truncated" if truncated else scored["reason"],
                    "full_score": 0.0 if truncated else float(full["score"]),
                    "full_reason": "truncated" if truncated else full["reason"],
                    "depth": countdown_trace.depth(numbers, target),
                }
            )
    return results


def length_percentiles(lengths: Sequence[int]) -> dict[str, float]:
    """p10/p50/p90 of response lengths and the p90/p10 ratio (the spread the task is built for)."""
    values = torch.tensor(list(lengths), dtype=torch.float64)
    if values.numel() == 0:
        raise ValueError("No lengths to summarise.")
    p10, p50, p90 = (float(torch.quantile(values, q)) for q in (0.1, 0.5, 0.9))
    return {
        "p10": p10,
        "p50": p50,
        "p90": p90,
        "p90_over_p10": p90 / p10,
        "min": float(values.min()),
        "max": float(values.max()),
    }


# Depth buckets (first and last depth) of the full-trace accuracy: log-spaced, as the depths are drawn.
DEPTH_BUCKETS = ((1, 1), (2, 3), (4, 7), (8, 15), (16, countdown_trace.DEFAULT_MAX_DEPTH))


def sample_figures(samples: Sequence[dict]) -> dict:
    """Accuracy under both rewards, the full-trace accuracy per depth bucket, truncation and the length spread."""
    by_depth = {}
    for low, high in DEPTH_BUCKETS:
        bucket = [sample["full_score"] for sample in samples if low <= sample["depth"] <= high]
        if bucket:
            by_depth[f"{low}-{high}"] = sum(bucket) / len(bucket)
    return {
        "accuracy_t1": sum(sample["score"] for sample in samples) / len(samples),
        "accuracy_t1_full_trace": sum(sample["full_score"] for sample in samples) / len(samples),
        "accuracy_t1_full_trace_by_depth": by_depth,
        "truncated_fraction_t1": sum(sample["truncated"] for sample in samples) / len(samples),
        "length_t1": length_percentiles([sample["length"] for sample in samples]),
    }


def warm_start_trace(
    base_dir: Path, out_dir: Path, settings: TraceWarmStartSettings | None = None, exclude: Sequence[Instance] = ()
) -> Path:
    """Warm-start the model in ``base_dir`` on traces and save it (with its tokenizer) to ``out_dir``; reuse a cache."""
    settings = settings or TraceWarmStartSettings()
    base_dir, out_dir = Path(base_dir), Path(out_dir)

    def train_and_measure(model, tokenizer) -> dict:
        losses = train(model, tokenizer, settings, exclude)
        figures = {"final_loss": sum(losses[-20:]) / len(losses[-20:])}
        eval_problems = list(exclude)[: settings.eval_problems]
        if eval_problems:
            budget = settings.max_response_length
            figures |= sample_figures(sample_and_score(model, tokenizer, eval_problems, budget, seed=settings.seed))
        return figures

    manifest = warm_start_manifest(base_dir, settings, exclude, task=countdown_trace.DATA_SOURCE)
    return cached_warm_start(base_dir, out_dir, manifest, train_and_measure, "warm_start_trace")


@dataclass(frozen=True, kw_only=True)
class TraceWarmStartCommand:
    """Options of ``python -m deltal.cpu.warmstart_trace``; the rest of TraceWarmStartSettings keeps its defaults."""

    assets: Path
    """Where to build (or find) the untrained model."""
    out: Path
    """Where to save the warm-started model."""
    exclude_parquet: Path | None = None
    """Held-out trace parquet whose problems are never trained on."""
    steps: int = TraceWarmStartSettings.steps
    """Optimizer steps."""
    batch_size: int = TraceWarmStartSettings.batch_size
    """Examples per step."""
    lr: float = TraceWarmStartSettings.lr
    """Peak AdamW learning rate."""
    seed: int = TraceWarmStartSettings.seed
    """Data and init seed."""
    evaluate_only: bool = False
    """Train nothing: sample one response per --exclude-parquet problem from the model in --out (T = 1) and print
    the figures (both rewards, full-trace accuracy by depth, lengths) as JSON."""


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one flag per TraceWarmStartCommand field, helped by its docstring."""
    return add_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]), TraceWarmStartCommand)


def main(argv: list[str] | None = None) -> int:
    """Build the tiny trace model, warm-start it (or reuse both) and print loss, accuracy and lengths."""
    command = settings_from(build_parser().parse_args(argv), TraceWarmStartCommand)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if command.evaluate_only:
        return evaluate_only(command)
    settings = TraceWarmStartSettings(
        steps=command.steps, batch_size=command.batch_size, lr=command.lr, seed=command.seed
    )
    exclude = read_instances(command.exclude_parquet) if command.exclude_parquet else []
    base = build_trace_assets(command.assets, seed=command.seed)
    try:
        out = warm_start_trace(base, command.out, settings, exclude)
    except FileExistsError as err:  # --out names a folder some other tool wrote
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = json.loads((out / MANIFEST_NAME).read_text())
    print(
        f"trace warm start: {out} loss={record['final_loss']:.3f} heldout_acc_t1={record.get('accuracy_t1')} "
        f"truncated_t1={record.get('truncated_fraction_t1')} length_t1={record.get('length_t1')}"
    )
    return 0


def evaluate_only(command: TraceWarmStartCommand) -> int:
    """``--evaluate-only``: the figures of an existing model on the held-out problems, as JSON."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if command.exclude_parquet is None or not (command.out / "config.json").exists():
        print(
            "error: --evaluate-only needs --out (a saved model) and --exclude-parquet (the problems)", file=sys.stderr
        )
        return 2
    torch.set_num_threads(cpu_threads())
    tokenizer = AutoTokenizer.from_pretrained(command.out)
    model = AutoModelForCausalLM.from_pretrained(command.out, dtype=torch.float32)
    problems = read_instances(command.exclude_parquet)[: TraceWarmStartSettings.eval_problems]
    budget = TraceWarmStartSettings.max_response_length
    figures = sample_figures(sample_and_score(model, tokenizer, problems, budget, seed=command.seed))
    print(json.dumps({"model": str(command.out), **figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
