"""One optimizer step of DeltaLGRPOTrainer in one process of a data-parallel run; rank 0 saves the gradient.

Run by ``test_data_parallel_on_cpu.py`` under ``python -m torch.distributed.run --standalone --nproc_per_node N``:

    data_parallel_worker.py MODEL_DIR OUT_DIR ACCUMULATION SCOPE [SCOPE ...]

The generation batch is 8 completions (2 prompts x 4) from ``conftest.scripted_rollout``, split over the processes
and ACCUMULATION micro-batches; DDP (gloo) averages the gradients. For each SCOPE (one run each, in the same
processes: start-up is most of the cost), rank 0 saves the gradient just before the optimizer step, with the first
log record, to OUT_DIR/<scope>.pt. Not a test module (pytest does not collect it).
"""

import sys
from pathlib import Path

import torch
from conftest import GradientAtOptimizerStep, cpu_config, load_model, make_trainer, scripted_rollout

from deltal.trl.rewards import completion_text

COMPLETIONS = 8
MAX_LENGTH = 16


def text_reward(completions, **kwargs):
    """Varies within every group (a function of the text, so the same in every process layout)."""
    return [float(sum(map(ord, completion_text(completion))) % 5) for completion in completions]


def one_step(model_dir: Path, out: Path, accumulation: int, scope: str, processes: int) -> tuple[list, dict]:
    """(gradient at the first optimizer step, first log record) of DeltaLGRPOTrainer on the scripted batch."""
    model, tokenizer = load_model(model_dir)
    config = cpu_config(
        out,
        per_device_train_batch_size=COMPLETIONS // (processes * accumulation),
        gradient_accumulation_steps=accumulation,
        max_grad_norm=0.0,
        max_completion_length=MAX_LENGTH,
        delta_l_scope=scope,
        ddp_backend="gloo" if processes > 1 else None,
    )
    probe = GradientAtOptimizerStep(model)
    trainer = make_trainer(
        model, tokenizer, config, reward=text_reward, rollout_func=scripted_rollout(MAX_LENGTH), callbacks=[probe]
    )
    trainer.train()
    return probe.gradients, next(entry for entry in trainer.state.log_history if "loss" in entry)


if __name__ == "__main__":
    import os

    model_dir, out, accumulation = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for scope in sys.argv[4:]:
        gradients, record = one_step(model_dir, out / scope, accumulation, scope, int(os.environ["WORLD_SIZE"]))
        if int(os.environ["RANK"]) == 0:
            torch.save({"gradients": gradients, "record": record}, out / f"{scope}.pt")
