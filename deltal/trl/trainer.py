"""``DeltaLGRPOTrainer``: TRL's ``GRPOTrainer`` with ΔL Normalization, on one seam of TRL 1.12.0.

The seam (``trl/trainer/grpo_trainer.py``):

* ``GRPOTrainer._generate_and_score_completions(inputs)`` generates one generation batch, scores it and returns a
  dict whose ``advantages`` (B,) hold this process's slice of advantages computed over every process. It runs once
  per ``steps_per_generation x num_iterations`` optimizer micro-steps (``GRPOTrainer._prepare_inputs``); the batch
  is then shuffled and split into micro-batches. This subclass multiplies ``advantages`` by the ΔL weights
  w_i = L_i^-α / mean_j L_j^-α, normalised over the generation batch gathered from all processes (the training
  batch of verl's ΔL), and returns the dict otherwise unchanged.
* ``loss_type="dr_grpo"`` (``GRPOTrainer._compute_loss``) divides each micro-batch's summed token losses by
  B_micro x max_completion_length x gradient_accumulation_steps, and DDP averages over processes: one optimizer
  step divides by its whole batch x M, a constant, exactly verl's ``seq-mean-token-sum-norm`` with
  ``loss_scale_factor`` = M. The coefficient on completion i's token-summed gradient is then w_i / (B·M), the
  paper's x_i = (1/M)·L_i^-α / Σ_j L_j^-α.

``dr_grpo``'s per-token policy loss, -min(r·A, clip(r)·A), and what TRL may multiply it by (the two-sided ``delta``
clip of r, the off-policy mask, which reads only the sign of A, the entropy mask, vLLM's importance ratio) scale
with A: multiplying A by w_i > 0 multiplies completion i's policy loss by w_i, so reweighting the advantages is
exactly reweighting the completions. A KL term (``beta`` > 0) or an entropy bonus is not reweighted, as in verl,
where those terms are aggregated with the same constant denominator. L_i is the number of tokens that
carry loss (``completion_mask`` x ``tool_mask``); a completion that ``mask_truncated_completions`` masked out has
L_i = 0 and stays out of the normaliser. ``_compute_loss`` itself is not overridden.

Library module; ``docs/trl.md`` shows it in use.
"""

from __future__ import annotations

from typing import Any

import torch
import trl
from trl import GRPOTrainer

from deltal.algorithm import response_lengths
from deltal.algorithm.aggregation import AGGREGATORS
from deltal.algorithm.telemetry import batch_costs
from deltal.trl import PINNED_TRL_VERSION
from deltal.trl.config import DeltaLGRPOConfig
from deltal.trl.weights import DeltaLConfigError, check_delta_l_options, generation_batch_weights


def check_trl_version() -> None:
    """Raise RuntimeError unless the installed TRL is the one this adapter's seam was read from."""
    if trl.__version__ != PINNED_TRL_VERSION:
        raise RuntimeError(
            f"deltal.trl is built for trl=={PINNED_TRL_VERSION} (it relies on GRPOTrainer's generation step and the "
            f"dr_grpo denominator of that release) but trl=={trl.__version__} is installed. Run "
            f"`pip install 'trl=={PINNED_TRL_VERSION}'` (or `pip install 'deltal[trl]'`)."
        )


class DeltaLGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose advantages carry the ΔL weights; takes the same arguments, with a ``DeltaLGRPOConfig``.

    Logs, next to TRL's metrics: ``deltal/alpha``, ``deltal/adv_weight/{mean,min,max}`` (over the completions in
    the normaliser), ``deltal/zero_advantage_excluded_fraction`` (with ``delta_l_exclude_zero_advantage``) and the
    variance telemetry of ``deltal.algorithm.telemetry`` on the same lengths: ``deltal/variance/cv_ratio_to_optimal``
    and ``deltal/variance/cv_ratio/<aggregator>`` for the paper's other aggregations.
    """

    def __init__(self, model: Any, reward_funcs: Any = None, args: DeltaLGRPOConfig | None = None, *rest, **kwargs):
        check_trl_version()
        if not isinstance(args, DeltaLGRPOConfig):
            raise DeltaLConfigError(
                f"DeltaLGRPOTrainer needs args=DeltaLGRPOConfig(...), got {type(args).__name__}: build the config with "
                "deltal.trl.DeltaLGRPOConfig (same fields as GRPOConfig, plus delta_l_alpha, delta_l_scope and "
                "delta_l_exclude_zero_advantage)."
            )
        # Again here: fields may have been reassigned since the config was built.
        args.delta_l_alpha = check_delta_l_options(
            args.delta_l_alpha,
            args.delta_l_scope,
            args.delta_l_exclude_zero_advantage,
            args.loss_type,
            args.max_completion_length,
            args.multi_objective_aggregation,
            args.use_liger_kernel,
        )
        super().__init__(model, reward_funcs, args, *rest, **kwargs)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        return self.apply_delta_l(super()._generate_and_score_completions(inputs))

    def apply_delta_l(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Multiply ``batch["advantages"]`` (this process's (B,) slice) by the ΔL weights of the generation batch.

        The lengths and advantages of every process are gathered (TRL's row order: process 0's rows first), the
        weights computed on all of them, and this process's rows kept, the slice TRL takes of its own advantages.
        """
        args: DeltaLGRPOConfig = self.args
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        advantages = batch["advantages"]  # (B,)
        if advantages.dim() != 1:
            raise ValueError(
                f"DeltaLGRPOTrainer expects TRL's per-completion advantages of shape (B,), got "
                f"{tuple(advantages.shape)}; a subclass that returns per-token advantages must weight them itself."
            )
        loss_mask = batch["completion_mask"]  # (B, T)
        if batch.get("tool_mask") is not None:
            loss_mask = loss_mask * batch["tool_mask"]  # tool outputs carry no loss, as in _compute_loss
        lengths = response_lengths(loss_mask)  # (B,)
        all_lengths = self.accelerator.gather(lengths)  # (N,) N = B x processes
        all_advantages = self.accelerator.gather(advantages)  # (N,)
        weights, normaliser_lengths = generation_batch_weights(
            all_lengths,
            all_advantages,
            group_size,
            args.delta_l_alpha,
            args.delta_l_scope,
            args.delta_l_exclude_zero_advantage,
        )
        start = self.accelerator.process_index * lengths.shape[0]
        batch["advantages"] = advantages * weights[start : start + lengths.shape[0]].to(advantages.dtype)
        self._log_delta_l(mode, weights, all_lengths, normaliser_lengths, group_size)
        return batch

    def _log_delta_l(
        self,
        mode: str,
        weights: torch.Tensor,
        lengths: torch.Tensor,
        normaliser_lengths: torch.Tensor,
        group_size: int,
    ) -> None:
        """Record the weights and the variance telemetry of one generation batch (the same on every process)."""
        args: DeltaLGRPOConfig = self.args
        metrics = self._metrics[mode]
        metrics["deltal/alpha"].append(args.delta_l_alpha)
        weighted = normaliser_lengths > 0
        if args.delta_l_exclude_zero_advantage:
            valid = (lengths > 0).sum().clamp(min=1)
            metrics["deltal/zero_advantage_excluded_fraction"].append(1.0 - (weighted.sum() / valid).item())
        if not bool(weighted.any()):
            return  # every completion is masked out or excluded: no weights to describe
        in_normaliser = weights[weighted]
        metrics["deltal/adv_weight/mean"].append(in_normaliser.mean().item())
        metrics["deltal/adv_weight/min"].append(in_normaliser.min().item())
        metrics["deltal/adv_weight/max"].append(in_normaliser.max().item())
        limit = float(args.max_completion_length)
        normaliser_lengths = normaliser_lengths.detach().to("cpu", torch.float64)
        if float(normaliser_lengths.max()) > limit:
            return  # completions longer than M (tool outputs appended): the paper's model does not apply
        group_ids = None
        if args.delta_l_scope == "group":
            group_ids = torch.arange(normaliser_lengths.shape[0]) // group_size
        running, others = batch_costs("delta_l", normaliser_lengths, limit, args.delta_l_alpha, group_ids)
        metrics["deltal/variance/cv_ratio_to_optimal"].append(running.cv_ratio)
        for name in AGGREGATORS:
            if name != "delta_l":
                metrics[f"deltal/variance/cv_ratio/{name}"].append(others[name].cv_ratio)
