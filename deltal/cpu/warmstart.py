"""Supervised warm start of the tiny CPU model on easy-CountDown solutions, so that RL starts with some reward.

A freshly initialised model never emits ``<answer>EXPR</answer>`` and RL on a strict reward gets no signal. A
short supervised stage on solver-made answers (``deltal.data.solver.solve``) teaches the format and some
arithmetic: about 400 steps at batch 64, lr 1e-3, reach ~20% temperature-1 accuracy on held-out problems
(``docs/cpu-quickstart-sizing.md`` §3), leaving room for RL to improve.

This is a plain PyTorch loop rather than verl's SFT trainer: it needs ~0.1 s per step on one core (~45 s in
all), while verl's trainer would add its distributed start-up (torchrun, FSDP, the CPU shims) to a one-minute job
and buy nothing for a 0.5 M-parameter model. Loss is next-token cross-entropy on the response tokens only
(prompt tokens are context), examples drawn fresh every step; problems in ``exclude`` (the held-out split) are
never trained on.

    python -m deltal.cpu.warmstart --base .deltal/assets/tiny-qwen2-seed0 --out .deltal/assets/warm \\
        --exclude-parquet .deltal/data/countdown_easy/test.parquet --steps 400

The output directory holds the trained model and tokenizer (loadable by verl) and ``deltal_warmstart.json`` with
the settings and the measured accuracy; a second call with the same settings reuses it.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from deltal.cli import add_options, settings_from
from deltal.cpu.threads import cpu_threads
from deltal.sampling import SamplingSettings, generate_batch

logger = logging.getLogger(__name__)

MANIFEST_NAME = "deltal_warmstart.json"
RECIPE_VERSION = 1
Instance = tuple[tuple[int, ...], int]  # (numbers in prompt order, target)


@dataclass(frozen=True)
class WarmStartSettings:
    """Supervised stage settings (defaults: docs/cpu-quickstart-sizing.md §3, ~20% T=1 accuracy)."""

    steps: int = 400
    batch_size: int = 64
    lr: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.0
    seed: int = 0
    problem_pool: int = 2000  # distinct training problems drawn up front (the easy space has ~2900 in all)
    eval_problems: int = 256  # held-out problems for the accuracy figure


def answer_text(expression: str) -> str:
    """The response the strict reward accepts, before the turn-end token."""
    return f"<answer>{expression}</answer>"


def prompt_ids(tokenizer, numbers: Sequence[int], target: int) -> list[int]:
    """Token ids of the chat prompt exactly as verl renders it (chat template + generation prompt)."""
    from deltal.data.countdown import easy_prompt
    from deltal.data.rl_format import chat_messages

    text = tokenizer.apply_chat_template(
        chat_messages(easy_prompt(numbers, target)), tokenize=False, add_generation_prompt=True
    )
    return tokenizer.encode(text, add_special_tokens=False)


def read_instances(parquet_path: Path) -> list[Instance]:
    """(numbers, target) of every row of a deltal CountDown parquet file."""
    import pyarrow.parquet as pq

    rows = pq.read_table(parquet_path, columns=["reward_model"]).to_pylist()
    instances = []
    for row in rows:
        truth = row["reward_model"]["ground_truth"]
        instances.append((tuple(int(n) for n in truth["numbers"]), int(truth["target"])))
    return instances


def draw_training_pool(
    tokenizer, count: int, rng: random.Random, exclude: Iterable[Instance]
) -> list[tuple[Instance, list[int], list[str]]]:
    """``count`` distinct easy problems (none of ``exclude``): (instance, prompt ids, every solver solution)."""
    from deltal.data.countdown import draw_easy, instance_key
    from deltal.data.solver import solve

    excluded = {instance_key(numbers, target) for numbers, target in exclude}
    pool: dict[tuple, tuple[Instance, list[int], list[str]]] = {}
    stalled = 0
    while len(pool) < count and stalled < 20_000:
        numbers, target = draw_easy(rng)
        key = instance_key(numbers, target)
        if key in excluded or key in pool:
            stalled += 1
            continue
        stalled = 0
        # Rendering the chat template is the slow part of a batch; do it once per problem.
        pool[key] = ((numbers, target), prompt_ids(tokenizer, numbers, target), solve(numbers, target))
    if not pool:
        raise ValueError("Every easy problem is excluded; pass a smaller held-out set to exclude.")
    return list(pool.values())


def _batch(
    tokenizer, pool: Sequence[tuple[Instance, list[int], list[str]]], size: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (input_ids, attention_mask, labels), labels -100 outside the response. Each (bs, width)."""
    sequences, label_masks = [], []
    for _ in range(size):
        _, prompt, solutions = rng.choice(pool)
        response = tokenizer.encode(answer_text(rng.choice(solutions)), add_special_tokens=False)
        response.append(tokenizer.eos_token_id)
        sequences.append(prompt + response)
        label_masks.append([False] * len(prompt) + [True] * len(response))
    width = max(len(s) for s in sequences)
    input_ids = torch.full((size, width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((size, width), dtype=torch.long)
    labels = torch.full((size, width), -100, dtype=torch.long)
    for row, (sequence, mask) in enumerate(zip(sequences, label_masks, strict=True)):
        ids = torch.tensor(sequence, dtype=torch.long)
        input_ids[row, : len(sequence)] = ids
        attention_mask[row, : len(sequence)] = 1
        labels[row, : len(sequence)] = torch.where(torch.tensor(mask), ids, torch.tensor(-100))
    return input_ids, attention_mask, labels


def response_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over response tokens."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]  # (bs, width-1, vocab)
    targets = labels[:, 1:]  # (bs, width-1)
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100
    )


@torch.no_grad()
def strict_accuracy(model, tokenizer, problems: Sequence[Instance], temperature: float = 1.0, seed: int = 0) -> float:
    """Fraction of ``problems`` solved under the strict reward, one sample each, 24 new tokens at most."""
    from deltal.rewards.countdown import compute_score_strict

    if not problems:
        raise ValueError("No problems to evaluate on.")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    prompts = [prompt_ids(tokenizer, numbers, target) for numbers, target in problems]
    responses = generate_batch(
        model,
        prompts,
        [24] * len(prompts),
        SamplingSettings(temperature=temperature),
        {tokenizer.eos_token_id},
        tokenizer.pad_token_id,
        generator,
    )
    solved = 0.0
    for (numbers, target), response in zip(problems, responses, strict=True):
        text = tokenizer.decode(response.token_ids, skip_special_tokens=True)
        truth = {"target": target, "numbers": list(numbers)}
        solved += float(compute_score_strict("countdown_easy", text, truth)["score"])
    return solved / len(problems)


def train_warm_start(model, tokenizer, settings: WarmStartSettings, exclude: Sequence[Instance] = ()) -> list[float]:
    """Run the supervised stage on ``model`` in place; return the loss of every step."""
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    pool = draw_training_pool(tokenizer, settings.problem_pool, rng, exclude)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    def lr_scale(step: int) -> float:
        # Linear warm-up, then constant (docs/cpu-quickstart-sizing.md §3; decaying cost accuracy at 400 steps).
        return min(1.0, (step + 1) / settings.warmup_steps)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_scale)
    model.train()
    losses = []
    for _ in tqdm(range(settings.steps), desc="warm start", unit="step", mininterval=5):
        loss = response_loss(model, *_batch(tokenizer, pool, settings.batch_size, rng))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    return losses


def warm_start_manifest(base_dir: Path, settings: object, exclude: Sequence[Instance], **extra: object) -> dict:
    """What identifies a warm start (its base model, settings and held-out set): a cache with the same one is reused."""
    base_manifest = base_dir / "deltal_assets.json"
    return {
        "recipe_version": RECIPE_VERSION,
        **extra,
        "base": json.loads(base_manifest.read_text()) if base_manifest.exists() else str(base_dir.resolve()),
        "settings": asdict(settings),
        "excluded_problems": len(exclude),
    }


def cached_warm_start(
    base_dir: Path, out_dir: Path, manifest: dict, train_and_measure: Callable[[Any, Any], dict], name: str
) -> Path:
    """Reuse ``out_dir`` when its manifest matches; else load the base model, run ``train_and_measure(model,
    tokenizer)`` (it trains and returns the figures to record) and save model, tokenizer and record through a staging
    folder renamed into place, so an interrupted run never leaves a cache that looks finished. ``name`` is the
    function the caller exposes, for messages. Shared by every task's warm start."""
    manifest_path = out_dir / MANIFEST_NAME
    if manifest_path.exists():
        cached = json.loads(manifest_path.read_text())
        if {key: cached.get(key) for key in manifest} == manifest:
            logger.info("Reusing %s at %s (held-out T=1 accuracy %s)", name, out_dir, cached.get("accuracy_t1"))
            return out_dir
    if out_dir.exists() and any(out_dir.iterdir()) and not manifest_path.exists():
        raise FileExistsError(f"{out_dir} exists and was not written by {name}; pass a new directory.")

    # Imported here, not above: reusing a cache, as every quickstart after the first does, needs no model
    # (about 1.5 s of CPU less before each launch, docs/cpu-step-profile.md).
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(cpu_threads())
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="sdpa")
    record = {**manifest, **train_and_measure(model, tokenizer)}

    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / MANIFEST_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    figures = {key: value for key, value in record.items() if key not in manifest}
    logger.info("%s saved to %s: %s", name, out_dir, figures)
    return out_dir


def warm_start(
    base_dir: Path, out_dir: Path, settings: WarmStartSettings | None = None, exclude: Sequence[Instance] = ()
) -> Path:
    """Warm-start the model in ``base_dir`` and save it (with its tokenizer) to ``out_dir``; reuse a cached run."""
    settings = settings or WarmStartSettings()
    base_dir, out_dir = Path(base_dir), Path(out_dir)

    def train_and_measure(model, tokenizer) -> dict:
        losses = train_warm_start(model, tokenizer, settings, exclude)
        eval_problems = list(exclude)[: settings.eval_problems]
        accuracy = strict_accuracy(model, tokenizer, eval_problems, seed=settings.seed) if eval_problems else None
        return {"final_loss": sum(losses[-20:]) / len(losses[-20:]), "accuracy_t1": accuracy}

    manifest = warm_start_manifest(base_dir, settings, exclude)
    return cached_warm_start(base_dir, out_dir, manifest, train_and_measure, "warm_start")


@dataclass(frozen=True, kw_only=True)
class WarmStartCommand:
    """Options of ``python -m deltal.cpu.warmstart``; the rest of WarmStartSettings keeps its defaults."""

    base: Path
    """HF directory from deltal.cpu.assets."""
    out: Path
    """Where to save the warm-started model."""
    exclude_parquet: Path | None = None
    """Held-out CountDown parquet whose problems are never trained on."""
    steps: int = WarmStartSettings.steps
    """Optimizer steps."""
    batch_size: int = WarmStartSettings.batch_size
    """Examples per step."""
    lr: float = WarmStartSettings.lr
    """Peak AdamW learning rate."""
    seed: int = WarmStartSettings.seed
    """Data and init seed."""


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one flag per WarmStartCommand field, helped by its docstring."""
    return add_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]), WarmStartCommand)


def main(argv: list[str] | None = None) -> int:
    """Warm-start (or reuse) the model and print its loss and held-out accuracy."""
    command = settings_from(build_parser().parse_args(argv), WarmStartCommand)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = WarmStartSettings(steps=command.steps, batch_size=command.batch_size, lr=command.lr, seed=command.seed)
    exclude = read_instances(command.exclude_parquet) if command.exclude_parquet else []
    try:
        out = warm_start(command.base, command.out, settings, exclude)
    except FileExistsError as err:  # --out names a folder some other tool wrote
        print(f"error: {err}", file=sys.stderr)
        return 2
    record = json.loads((out / MANIFEST_NAME).read_text())
    print(f"warm start: {out} loss={record['final_loss']:.3f} heldout_acc_t1={record['accuracy_t1']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
