"""One optimizer step of ``DeltaLGRPOTrainer`` has the same gradient for 1, 2 and 4 gradient-accumulation steps.

Each run is TRL 1.12.0's and transformers' own training loop (``trainer.train()``, one step): the same 8 completions
(2 prompts x 4, the same seed, checked) are generated once, reweighted by ΔL over the whole generation batch, then
shuffled and split into 1, 2 or 4 micro-batches whose gradients accumulate. The gradient is read just before the
optimizer step (a ``TrainerCallback``; clipping off). With the constant ``dr_grpo`` denominator it must not depend on
the split: every entry agrees with the 1-step gradient to rtol 1e-6 (the model runs in float64, so what remains is
summation order: measured worst 6e-10 of an entry, 1.3e-15 of a tensor's largest entry). A reward that varies with the
text keeps every group's advantages non-zero, and the completions' lengths vary, so both the gradient and the ΔL
weights are non-trivial. The same harness tells apart a split-dependent aggregation: TRL's ``bnpo`` (token mean of
each micro-batch; measured 0.29 of a tensor's scale between 1 and 4 accumulation steps).
"""

import pytest
import torch
from conftest import GradientAtOptimizerStep, countdown_prompts, cpu_config, load_model, make_trainer
from trl import GRPOConfig, GRPOTrainer

from deltal.trl.rewards import completion_text

COMPLETIONS = 8
TOLERANCE = 1e-6


def one_step(model_dir, out, accumulation: int, loss_type: str | None = None, **fields):
    """(gradient, sorted completion texts, log record) of one optimizer step with ``accumulation`` micro-batches.

    ``loss_type`` set: a plain GRPOTrainer with that loss, for contrast; else DeltaLGRPOTrainer with ``fields``.
    """
    model, tokenizer = load_model(model_dir)
    seen: list[str] = []

    def text_reward(completions, **kwargs):
        texts = [completion_text(completion) for completion in completions]
        seen.extend(texts)
        return [float(len(text) % 7) for text in texts]  # varies within every group of 4

    sizes = dict(
        per_device_train_batch_size=COMPLETIONS // accumulation,
        gradient_accumulation_steps=accumulation,
        max_grad_norm=0.0,  # no clipping: compare raw gradients
        learning_rate=1e-3,
    )
    probe = GradientAtOptimizerStep(model)
    if loss_type is None:
        config = cpu_config(out, **sizes, **fields)
        trainer = make_trainer(model, tokenizer, config, reward=text_reward, callbacks=[probe])
    else:
        plain = cpu_config(out)  # the same CPU settings, as a plain GRPOConfig
        settings = {key: getattr(plain, key) for key in ("output_dir", "use_cpu", "bf16", "report_to", "seed")}
        config = GRPOConfig(
            **settings,
            **sizes,
            loss_type=loss_type,
            gradient_checkpointing=False,
            save_strategy="no",
            max_completion_length=plain.max_completion_length,
            num_generations=plain.num_generations,
            max_steps=1,
            logging_steps=1,
            disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=text_reward,
            args=config,
            train_dataset=countdown_prompts(16),
            processing_class=tokenizer,
            callbacks=[probe],
        )
    trainer.train()
    record = next(entry for entry in trainer.state.log_history if "loss" in entry)
    return probe.gradients, sorted(seen), record


def assert_same_gradient(gradients: list[torch.Tensor], reference: list[torch.Tensor]) -> None:
    for gradient, expected in zip(gradients, reference, strict=True):
        torch.testing.assert_close(gradient, expected, rtol=TOLERANCE, atol=1e-12)


def worst_relative_difference(gradients: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """max over parameter tensors of max|g - g_ref| / max|g_ref|."""
    return max(
        ((gradient - expected).abs().max() / expected.abs().max()).item()
        for gradient, expected in zip(gradients, reference, strict=True)
    )


@pytest.mark.parametrize(("scope", "exclude"), [("batch", False), ("group", True)])
def test_gradient_of_one_step_is_the_same_for_1_2_and_4_accumulation_steps(tiny_model_dir, tmp_path, scope, exclude):
    options = dict(delta_l_scope=scope, delta_l_exclude_zero_advantage=exclude)
    reference, completions, record = one_step(tiny_model_dir, tmp_path / "ga1", 1, **options)
    assert len(completions) == COMPLETIONS
    assert record["deltal/adv_weight/max"] > record["deltal/adv_weight/min"] + 0.05, "lengths vary: weights differ"
    assert sum(gradient.norm() for gradient in reference) > 1e-4, "a non-zero gradient, so equality means something"
    for accumulation in (2, 4):
        gradients, same_completions, _ = one_step(
            tiny_model_dir, tmp_path / f"ga{accumulation}", accumulation, **options
        )
        assert same_completions == completions, "the runs must train on the same generation batch"
        assert_same_gradient(gradients, reference)


def test_the_harness_detects_an_aggregation_that_depends_on_the_split(tiny_model_dir, tmp_path):
    reference, completions, _ = one_step(tiny_model_dir, tmp_path / "bnpo1", 1, loss_type="bnpo")
    gradients, same_completions, _ = one_step(tiny_model_dir, tmp_path / "bnpo4", 4, loss_type="bnpo")
    assert same_completions == completions
    assert worst_relative_difference(gradients, reference) > 100 * TOLERANCE
