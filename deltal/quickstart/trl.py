"""TRL + ΔL on CPU: train the tiny local Qwen2 on easy CountDown with ``DeltaLGRPOTrainer`` and deltal's reward.

The TRL twin of the verl quickstart (``train_scripts/quickstart-cpu.sh``), with the same assets and no downloads:
it builds (or reuses, under ``--cache-dir``) the tiny tokenizer and model, the easy CountDown parquet files and the
supervised warm start, then runs TRL's ``GRPOTrainer`` loop with ΔL (``deltal.trl``), generation by
``transformers`` (no vLLM), and ends with one line:

    trl-quickstart: alpha=1 scope=batch steps=<n> reward_first=<x> reward_last=<y> adv_weight_max=<w> wall_s=<t> ...

where the rewards are averaged over the first and the last ``--window`` steps. Every logged step (TRL's metrics and
``deltal/*``) is written to ``<out>/metrics.jsonl``. Run it as

    deltal trl-quickstart                     # = python -m deltal.trl.quickstart; about 2 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deltal.cli import add_options, option, settings_from

DEFAULT_CACHE_DIR = Path(".deltal")
# The verl quickstart's data sizes, so that the two share one cached dataset and warm start.
TRAIN_SIZE = 4096
TEST_SIZE = 256
REWARD_METRIC = "reward"


@dataclass(frozen=True, kw_only=True)
class QuickstartSettings:
    """Options of ``deltal trl-quickstart``."""

    alpha: float = 1.0
    """ΔL exponent α (delta_l_alpha): 1.0 minimum variance, 0.0 = Dr. GRPO."""
    scope: Literal["batch", "group"] = "batch"
    """normalise the ΔL weights over the generation batch (the paper) or within each prompt's completions."""
    exclude_zero_advantage: bool = False
    """leave groups whose rewards are all equal out of the ΔL normaliser."""
    steps: int = 40
    """optimizer steps."""
    prompts: int = 16
    """prompts per optimizer step."""
    num_generations: int = 8
    """completions per prompt (TRL's num_generations, the GRPO group size)."""
    grad_accum: int = 1
    """gradient-accumulation steps: each step's prompts x num_generations completions are split into this many
    micro-batches (ΔL gives the same gradient for any split)."""
    max_completion_length: int = 24
    """generation limit in tokens, the constant M of the ΔL denominator."""
    lr: float = 2e-4
    """AdamW learning rate (constant)."""
    seed: int = 0
    """seed of the assets, the data and TRL."""
    model: Path | None = field(default=None, metadata=option(metavar="DIR"))
    """Hugging Face model folder to train (default: the warm start of the verl quickstart, built if missing)."""
    data: Path | None = field(default=None, metadata=option(metavar="DIR"))
    """folder with train.parquet from `deltal data countdown --variant easy` (default: built under --cache-dir)."""
    warm_steps: int = 400
    """supervised warm-start steps of the default model."""
    cache_dir: Path = DEFAULT_CACHE_DIR
    """where the tiny assets, data and warm start are cached (shared with the verl quickstart)."""
    out: Path | None = field(default=None, metadata=option(metavar="DIR"))
    """run folder for TRL's output and metrics.jsonl (default: <cache-dir>/runs/<run name>)."""
    window: int = 10
    """steps averaged for reward_first and reward_last."""


def check_sizes(settings: QuickstartSettings) -> None:
    """Raise ValueError naming the option to change when the batch sizes do not fit together."""
    for name in ("steps", "prompts", "grad_accum", "max_completion_length", "window", "warm_steps"):
        if getattr(settings, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(settings, name)}")
    if settings.num_generations < 2:
        raise ValueError(
            f"--num-generations must be >= 2 (GRPO compares completions of one prompt), got {settings.num_generations}"
        )
    completions = settings.prompts * settings.num_generations
    if completions % settings.grad_accum != 0:
        raise ValueError(
            f"--prompts x --num-generations = {completions} completions per step do not split into --grad-accum "
            f"{settings.grad_accum} equal micro-batches; choose a --grad-accum that divides {completions}"
        )


def run_name(settings: QuickstartSettings) -> str:
    """``{task}__{method}__{model}__seed{seed}``, as the verl quickstart names its runs."""
    return f"trl_countdown_easy__delta_l_alpha{settings.alpha:g}_{settings.scope}__tiny-qwen2__seed{settings.seed}"


def prepare_data(settings: QuickstartSettings) -> Path:
    """The easy CountDown folder: ``--data``, or the verl quickstart's cached one (built if missing)."""
    if settings.data is not None:
        if not (settings.data / "train.parquet").is_file():
            raise ValueError(
                f"--data {settings.data} has no train.parquet; build one with "
                f"`deltal data countdown --variant easy --out {settings.data}`"
            )
        return settings.data
    from deltal.data.countdown import build

    folder = settings.cache_dir / "data" / f"countdown_easy-seed{settings.seed}"
    if not (folder / "train.parquet").is_file():
        build(folder, TRAIN_SIZE, TEST_SIZE, seed=settings.seed, variant="easy")
    return folder


def prepare_model(settings: QuickstartSettings, data: Path) -> Path:
    """``--model``, or the verl quickstart's warm start of the tiny model (built, and cached, if missing)."""
    if settings.model is not None:
        if not (settings.model / "config.json").is_file():
            raise ValueError(f"--model {settings.model} is not a Hugging Face model folder (no config.json)")
        return settings.model
    from deltal.cpu.assets import build_tiny_assets
    from deltal.cpu.warmstart import WarmStartSettings, read_instances, warm_start

    assets = build_tiny_assets(settings.cache_dir / "assets" / f"tiny-qwen2-seed{settings.seed}", seed=settings.seed)
    held_out = data / "test.parquet"
    exclude = read_instances(held_out) if held_out.is_file() else []
    warm = settings.cache_dir / "assets" / f"tiny-qwen2-seed{settings.seed}-warm{settings.warm_steps}"
    return warm_start(assets, warm, WarmStartSettings(steps=settings.warm_steps, seed=settings.seed), exclude)


def build_config(settings: QuickstartSettings, out: Path):
    """The ``DeltaLGRPOConfig`` of the run (raises DeltaLConfigError for a bad ΔL option)."""
    from deltal.trl import DeltaLGRPOConfig

    completions = settings.prompts * settings.num_generations
    return DeltaLGRPOConfig(
        output_dir=str(out),
        delta_l_alpha=settings.alpha,
        delta_l_scope=settings.scope,
        delta_l_exclude_zero_advantage=settings.exclude_zero_advantage,
        max_completion_length=settings.max_completion_length,
        num_generations=settings.num_generations,
        per_device_train_batch_size=completions // settings.grad_accum,
        gradient_accumulation_steps=settings.grad_accum,
        max_steps=settings.steps,
        learning_rate=settings.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        seed=settings.seed,
        # CPU: full precision (TRL defaults to bf16), no checkpointing (TRL defaults to it), no loggers, no saves.
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )


def train(config, model_dir: Path, data: Path) -> list[dict[str, Any]]:
    """Run ``DeltaLGRPOTrainer`` with ``config``; return TRL's log history of the training steps."""
    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from deltal.cpu.threads import cpu_threads
    from deltal.trl import DeltaLGRPOTrainer, deltal_reward

    torch.set_num_threads(cpu_threads())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    dataset = Dataset.from_list(pq.read_table(data / "train.parquet").to_pylist())
    trainer = DeltaLGRPOTrainer(
        model=model, reward_funcs=deltal_reward, args=config, train_dataset=dataset, processing_class=tokenizer
    )
    trainer.train()
    return [record for record in trainer.state.log_history if REWARD_METRIC in record]


def window_mean(records: list[dict[str, Any]], key: str, window: int, last: bool) -> float:
    values = [record[key] for record in records if record.get(key) is not None]
    values = values[-window:] if last else values[:window]
    return sum(values) / len(values) if values else math.nan


def summary_line(settings: QuickstartSettings, records: list[dict[str, Any]], wall_s: float, metrics: Path) -> str:
    """The line the command ends with (see the module docstring)."""
    return (
        f"trl-quickstart: alpha={settings.alpha:g} scope={settings.scope} steps={len(records)} "
        f"reward_first={window_mean(records, REWARD_METRIC, settings.window, last=False):.3f} "
        f"reward_last={window_mean(records, REWARD_METRIC, settings.window, last=True):.3f} "
        f"adv_weight_max={window_mean(records, 'deltal/adv_weight/max', len(records), last=True):.3f} "
        f"wall_s={wall_s:.0f} metrics={metrics}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one flag per QuickstartSettings field, helped by its docstring."""
    parser = argparse.ArgumentParser(prog="deltal trl-quickstart", description=__doc__.splitlines()[0])
    return add_options(parser, QuickstartSettings)


def main(argv: list[str] | None = None) -> int:
    """Prepare the assets, train, write metrics.jsonl and print the summary line; bad options exit 2."""
    start = time.monotonic()
    parser = build_parser()
    settings = settings_from(parser.parse_args(argv), QuickstartSettings)
    # Before the Hugging Face libraries load: no hub lookups and no telemetry ping from TRL's trainer.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        check_sizes(settings)
        data = prepare_data(settings)
        model_dir = prepare_model(settings, data)
        out = settings.out or settings.cache_dir / "runs" / run_name(settings)
        config = build_config(settings, out)
    except (ValueError, FileExistsError) as err:  # a bad option (DeltaLConfigError is one) or a foreign cache folder
        parser.error(str(err))
    out.mkdir(parents=True, exist_ok=True)
    records = train(config, model_dir, data)
    metrics = out / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(record, sort_keys=True) + "\n" for record in records))
    print(summary_line(settings, records, time.monotonic() - start, metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
