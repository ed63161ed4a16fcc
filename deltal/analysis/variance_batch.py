"""Gradient variance of the aggregators measured on a model, over many prompts with balanced rewards (paper Figure 2
and Table 1 on a trained checkpoint).

The model lab (``deltal.analysis.variance_model``) resamples responses to one prompt. Here the resampled unit is a
training batch: B prompts × G responses, as a step of RL sees them, drawn from prompts of a dataset. Steps:

1. **Balanced pools.** For each prompt of ``--data`` (in file order) sample responses at the policy's temperature until
   ``--per-side`` correct and ``--per-side`` wrong ones are in hand; a prompt that does not get both within
   ``--max-samples`` is skipped (always right or always wrong: no GRPO gradient). Correct means the reward's ``acc``
   (exact correctness) where it has one, so partial credit does not count. Keeping as many correct as wrong
   responses makes every GRPO advantage ±1, so the responses' gradients no longer differ by the size of their
   advantage (with 4 correct answers in 96 the correct ones carry |A| ≈ 4.8 and the wrong ones 0.2,
   docs/experiments.md, 2026-11-26), and what is left of their spread is the policy's own noise.
2. **Per-response gradients** g_i = A_i ∇θ Σ_t log π(y_t | y_<t) over the whole model (``--params`` narrows it), as
   in the model lab.
3. **Length and variance.** d_i = ||g_i − ḡ_k||², the squared deviation from the mean gradient of its own prompt k,
   against L_i: a linear fit whose R² is the share of the per-response variance that length explains, and the power
   law Var ∝ L^β (``deltal.analysis.variance_fit``).
4. **Aggregators.** ``--resamples`` batches, each B prompts drawn with replacement from the kept ones and G responses
   with replacement from each prompt's pool; every aggregator's coefficients x_i over the whole batch (ΔL normalises
   over the batch, as deltal's trainer does), then the empirical variance and CV of ĝ = Σ x_i g_i through the Gram
   matrix, next to the closed-form CV of paper Table 1 from the same lengths (V̂ = Σ d_i / Σ L_i, ||μ|| = ||ḡ||).

    python -m deltal.analysis.variance batch --model CKPT/huggingface --data test.parquet --out DIR

Writes DIR/responses.csv, DIR/aggregators.csv, DIR/summary.json and DIR/variance_vs_length.png. Library module; the
command line is ``deltal.analysis.variance``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from deltal.analysis.variance_fit import corrected_variances, fit_power_law
from deltal.analysis.variance_model import (
    LinearFit,
    ModelLabConfig,
    Responses,
    aggregator_moments,
    encode_prompt,
    linear_fit,
    load_model_and_tokenizer,
    model_label,
    plot_variance_vs_length,
    resolve_max_new_tokens,
    response_gradients,
    sample_continuations,
    select_parameters,
)
from deltal.analysis.variance_synthetic import parse_alphas
from deltal.cli import option

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLabConfig:
    """Settings of one measurement; every field is a command-line flag of the same name."""

    model: str | None = None
    """Local HF model directory (a run's checkpoint exported with hf_model, or the warm start)."""
    data: str | None = None
    """verl RL parquet whose prompts and ground truths are used, in file order (e.g. a held-out split)."""
    num_prompts: int = 16
    """Prompts to keep (each with a balanced pool)."""
    prompt_indices: tuple[int, ...] = ()
    """Rows of --data to try, in this order (default: all, in file order); e.g. the prompts an earlier
    measurement kept (its responses.csv), to measure several checkpoints on one fixed set of prompts."""
    per_side: int = 8
    """Correct and wrong responses kept per prompt (the pool holds 2 × per_side)."""
    max_samples: int = 128
    """Responses sampled for one prompt before it is skipped for lack of correct or wrong ones."""
    max_new_tokens: int | None = None
    """Generation limit M; default the model's context minus the prompt."""
    temperature: float = 1.0
    """Sampling temperature (1 = the policy itself, as in RL rollouts)."""
    params: str = "."
    """Regex over parameter names whose gradients are measured (default: every parameter)."""
    batch_prompts: int = 16
    """B, prompts per resampled batch (the training batch)."""
    group_size: int = 8
    """G, responses per prompt in a resampled batch."""
    resamples: int = 2000
    """Batches drawn to estimate each aggregator's variance."""
    alphas: tuple[float, ...] = field(default=(1.0, 0.75, 0.5), metadata=option(parse=parse_alphas))
    """ΔL exponents whose CV is reported."""
    gen_batch_size: int = 64
    """Responses generated per generate() call."""
    device: str = "cpu"
    """torch device for the model (cpu, cuda)."""
    seed: int = 0
    """Seed of sampling and resampling."""


@dataclass
class Pool:
    """The balanced responses of one prompt."""

    prompt_index: int
    responses: Responses
    rewards: list[float]

    @property
    def advantages(self) -> list[float]:
        # Half correct, half wrong: the GRPO advantage (r − mean r) / std r is +1 or −1.
        return [1.0 if reward > 0 else -1.0 for reward in self.rewards]


def read_prompts(path: str | Path) -> list[tuple[str, str, object]]:
    """(user message, data source, ground truth) of every row of a verl RL parquet, in file order."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--data {path} does not exist; build a dataset with `deltal data ...` first")
    rows = pq.read_table(path).to_pylist()
    missing = {"prompt", "data_source", "reward_model"} - set(rows[0] if rows else {})
    if not rows or missing:
        raise ValueError(f"--data {path} is not a verl RL parquet (missing columns {sorted(missing)} or no rows)")
    prompts = []
    for row in rows:
        users = [message["content"] for message in row["prompt"] if message["role"] == "user"]
        prompts.append((users[-1], row["data_source"], row["reward_model"]["ground_truth"]))
    return prompts


def balanced_pool(model, tokenizer, index: int, prompt: tuple[str, str, object], config: BatchLabConfig) -> Pool | None:
    """Sample until ``per_side`` correct and wrong responses are in hand; None when ``max_samples`` do not suffice."""
    from deltal.rewards import compute_score

    text, data_source, truth = prompt
    prompt_ids = encode_prompt(tokenizer, text, raw=False)
    max_new_tokens = resolve_max_new_tokens(model, prompt_ids.numel(), config.max_new_tokens)
    kept: dict[bool, list[tuple[torch.Tensor, str]]] = {True: [], False: []}
    sampled = 0
    while sampled < config.max_samples and min(len(side) for side in kept.values()) < config.per_side:
        count = min(config.gen_batch_size, config.max_samples - sampled)
        for tokens in sample_continuations(
            model, tokenizer, prompt_ids, count, max_new_tokens, config.temperature, config.gen_batch_size
        ):
            response = tokenizer.decode(tokens, skip_special_tokens=True)
            # A response without EOS ran out of tokens: a truncated one scores 0, as in training.
            ended = int(tokens[-1]) == tokenizer.eos_token_id
            result = compute_score(data_source, response, truth)
            # Correct means exact (``acc``), also under a reward with partial credit.
            correct = ended and float(result.get("acc", result["score"])) > 0
            kept[correct].append((tokens, response))
        sampled += count
    if min(len(side) for side in kept.values()) < config.per_side:
        return None
    chosen = kept[True][: config.per_side] + kept[False][: config.per_side]
    responses = Responses(
        prompt_ids=prompt_ids,
        tokens=[tokens for tokens, _ in chosen],
        texts=[response for _, response in chosen],
        max_new_tokens=max_new_tokens,
    )
    return Pool(index, responses, [1.0] * config.per_side + [0.0] * config.per_side)


def batch_picks(pool_sizes: list[int], config: BatchLabConfig) -> torch.Tensor:
    """Response indices (into the stacked pools) of each resampled batch: (R, B·G).

    Each batch takes B prompts with replacement, then G responses with replacement from each prompt's pool.
    """
    generator = torch.Generator().manual_seed(config.seed)
    offsets = torch.tensor([0, *pool_sizes[:-1]]).cumsum(0)  # (K,) first row of each pool
    sizes = torch.tensor(pool_sizes)
    prompts = torch.randint(0, len(pool_sizes), (config.resamples, config.batch_prompts), generator=generator)
    within = torch.rand(config.resamples, config.batch_prompts, config.group_size, generator=generator)
    rows = offsets[prompts][..., None] + (within * sizes[prompts][..., None]).long()  # (R, B, G)
    return rows.reshape(config.resamples, -1)


def prompt_deviations(gradients: torch.Tensor, pool_sizes: list[int]) -> torch.Tensor:
    """||g_i − ḡ_k||², each response against the mean gradient of its own prompt: (N,) float64."""
    deviations = []
    for block in gradients.split(pool_sizes):
        centre = block.mean(dim=0)
        deviations.extend((row - centre).double().square().sum() for row in block)
    return torch.stack(deviations).cpu()


def check_config(config: BatchLabConfig) -> None:
    """Raise ValueError naming the flag to change for settings the measurement cannot use."""
    if config.model is None or config.data is None:
        raise ValueError("--model and --data are required (a local HF model directory and a verl RL parquet)")
    if config.num_prompts < 2 or config.per_side < 2:
        raise ValueError("--num-prompts and --per-side must be >= 2 (a variance needs several of each)")
    if config.max_samples < 2 * config.per_side:
        raise ValueError(f"--max-samples must be >= 2 × --per-side = {2 * config.per_side}")
    if min(config.batch_prompts, config.group_size, config.gen_batch_size) < 1 or config.resamples < 2:
        raise ValueError("--batch-prompts, --group-size and --gen-batch-size must be >= 1 and --resamples >= 2")
    if config.temperature <= 0:
        raise ValueError("--temperature must be > 0")


def run_batch_lab(config: BatchLabConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Sample balanced pools, differentiate, resample batches. Returns (per-response rows, aggregator rows, summary)."""
    check_config(config)
    model_config = ModelLabConfig(model=config.model, device=config.device)
    model, tokenizer, path = load_model_and_tokenizer(model_config)
    parameters = select_parameters(model, config.params)
    torch.manual_seed(config.seed)
    prompts = read_prompts(config.data)
    order = list(config.prompt_indices) or list(range(len(prompts)))
    if not all(0 <= index < len(prompts) for index in order):
        raise ValueError(f"--prompt-indices must lie in 0..{len(prompts) - 1} (the rows of {config.data})")
    pools: list[Pool] = []
    skipped = 0
    with tqdm(total=config.num_prompts, desc="balanced prompts", unit="prompt") as progress:
        for index in order:
            if len(pools) == config.num_prompts:
                break
            pool = balanced_pool(model, tokenizer, index, prompts[index], config)
            if pool is None:
                skipped += 1
                continue
            pools.append(pool)
            progress.update(1)
    if len(pools) < 2:
        raise ValueError(
            f"only {len(pools)} of {skipped + len(pools)} prompts got {config.per_side} correct and wrong responses "
            f"within {config.max_samples} samples; raise --max-samples, lower --per-side or use easier --data"
        )
    gradients = torch.cat(
        [
            response_gradients(model, parameters, pool.responses, pool.advantages, config.temperature)
            for pool in tqdm(pools, desc="gradients per prompt", unit="prompt")
        ]
    )  # (N, P)
    pool_sizes = [len(pool.rewards) for pool in pools]
    lengths = torch.cat([pool.responses.lengths for pool in pools])  # (N,)
    deviations = prompt_deviations(gradients, pool_sizes)
    fit = linear_fit(lengths, deviations)
    estimates = torch.cat([corrected_variances(block) for block in deviations.split(pool_sizes)])
    try:
        power_law = asdict(fit_power_law(lengths, estimates))
    except ValueError as err:  # e.g. too few positive estimates: keep the other results, say why
        logger.warning("power-law fit skipped: %s", err)
        power_law = None
    gram = (gradients @ gradients.T).double().cpu()  # (N, N)
    del gradients
    token_variance = float(deviations.sum() / lengths.sum())
    max_new_tokens = max(pool.responses.max_new_tokens for pool in pools)
    moments = aggregator_moments(
        gram, lengths, token_variance, config, max_new_tokens, picks=batch_picks(pool_sizes, config)
    )
    per_response = pd.DataFrame(
        {
            "prompt": [pool.prompt_index for pool in pools for _ in pool.rewards],
            "length": lengths.to(torch.int64).tolist(),
            "reward": [reward for pool in pools for reward in pool.rewards],
            "advantage": [advantage for pool in pools for advantage in pool.advantages],
            "sq_deviation": deviations.tolist(),
        }
    )
    cv = dict(zip(moments["aggregator"], moments["cv"], strict=True))
    closed = dict(zip(moments["aggregator"], moments["cv_closed_form"], strict=True))
    summary = {
        "model": path,
        "data": str(config.data),
        "params": config.params,
        "num_params": sum(parameter.numel() for parameter in parameters.values()),
        "prompts_kept": len(pools),
        "prompts_skipped": skipped,
        "num_responses": int(lengths.numel()),
        "length_p10_p50_p90": torch.quantile(lengths, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)).tolist(),
        "slope": fit.slope,
        "intercept": fit.intercept,
        "r2": fit.r2,
        "power_law": power_law,
        "token_variance_estimate": token_variance,
        "cv": cv,
        "cv_closed_form": closed,
        "cv_ratio_dr_grpo_norm_to_delta_l": _ratio(cv, "dr_grpo_norm", "delta_l_alpha_1"),
        "cv_ratio_closed_form": _ratio(closed, "dr_grpo_norm", "delta_l_alpha_1"),
        "settings": asdict(config),
    }
    return per_response, moments, summary


def _ratio(values: dict[str, float], numerator: str, denominator: str) -> float:
    if numerator not in values or denominator not in values or values[denominator] == 0:
        return math.nan
    return values[numerator] / values[denominator]


def write_outputs(per_response: pd.DataFrame, moments: pd.DataFrame, summary: dict, out: Path) -> None:
    """responses.csv, aggregators.csv, summary.json and the scatter of d_i against L_i."""
    out.mkdir(parents=True, exist_ok=True)
    per_response.to_csv(out / "responses.csv", index=False)
    moments.to_csv(out / "aggregators.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    fit = LinearFit(slope=summary["slope"], intercept=summary["intercept"], r2=summary["r2"])
    title = f"{model_label(summary['model'])}: {summary['prompts_kept']} prompts, {summary['num_responses']} responses"
    plot_variance_vs_length(per_response, fit, title, out / "variance_vs_length.png")
