"""Shared set-up of the TRL adapter tests: a tiny model that ends its completions at varied lengths, and trainers.

The model is the tiny Qwen2 of ``deltal.cpu.assets`` after a 30-step supervised warm start (about 7 s on one core):
a fresh model rarely emits EOS, so every completion would run to the limit and every ΔL weight would be 1; after
the warm start, completions of one prompt end anywhere between 2 and 24 tokens. Built once per session in tmp.
"""

import os
import zlib
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from deltal.cpu.assets import build_tiny_assets
from deltal.cpu.warmstart import WarmStartSettings, warm_start
from deltal.trl import DeltaLGRPOConfig, DeltaLGRPOTrainer

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the data-parallel test's scripted rollout_func is one

SHORT_WARM_START = WarmStartSettings(steps=30, batch_size=32, warmup_steps=5, problem_pool=300)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trl_assets")
    return warm_start(build_tiny_assets(root / "tiny", seed=0), root / "warm30", SHORT_WARM_START)


class GradientAtOptimizerStep(TrainerCallback):
    """Copies every parameter's gradient right before the (first) optimizer step."""

    def __init__(self, model):
        self.model = model
        self.gradients: list[torch.Tensor] | None = None

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.gradients is None:
            self.gradients = [parameter.grad.detach().clone() for parameter in self.model.parameters()]


def load_model(model_dir: Path, dtype: torch.dtype = torch.float64):
    """(model, tokenizer); float64 by default, so that equalities can be checked far below float32 rounding."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    return model, tokenizer


def countdown_prompts(count: int) -> Dataset:
    """``count`` easy CountDown chat prompts with their ground truth, in deltal's verl row format."""
    import random

    from deltal.data.countdown import generate_instances, rows_for

    instances = generate_instances(count, random.Random(3), "easy", set(), unique=True, desc="test prompts")
    return Dataset.from_list(list(rows_for(instances, "train", "easy", "instruct")))


def cpu_config(out: Path, **fields) -> DeltaLGRPOConfig:
    """A DeltaLGRPOConfig for CPU tests: full precision, no checkpointing, no loggers, no saves; ``fields`` on top."""
    settings = dict(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        max_completion_length=16,
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=1,
        seed=0,
    )
    settings.update(fields)
    return DeltaLGRPOConfig(**settings)


def make_trainer(model, tokenizer, config: DeltaLGRPOConfig, reward, dataset=None, **kwargs) -> DeltaLGRPOTrainer:
    return DeltaLGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=dataset if dataset is not None else countdown_prompts(16),
        processing_class=tokenizer,
        **kwargs,
    )


def scripted_rollout(max_length: int, seed: int = 0):
    """A TRL ``rollout_func`` whose completions are a function of (prompt, k): the k-th copy of a prompt in one call
    gets the same tokens and length however the generation batch is split over processes, unlike sampling, whose
    random stream depends on the split. Lengths vary in [2, max_length]; every completion ends with EOS."""

    def rollout(prompts, trainer):
        tokenizer = trainer.processing_class
        ordinary = torch.tensor(sorted(set(range(len(tokenizer))) - set(tokenizer.all_special_ids)))
        prompt_ids, completion_ids, copies = [], [], {}
        for prompt in prompts:
            text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            copy = copies[text] = copies.get(text, -1) + 1
            # crc32, not hash(): str hashes differ between processes
            generator = torch.Generator().manual_seed(zlib.crc32(f"{seed}|{copy}|{text}".encode()))
            length = int(torch.randint(2, max_length + 1, (1,), generator=generator))
            body = ordinary[torch.randint(len(ordinary), (length - 1,), generator=generator)].tolist()
            prompt_ids.append(tokenizer.encode(text, add_special_tokens=False))
            completion_ids.append([*body, tokenizer.eos_token_id])
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    return rollout
