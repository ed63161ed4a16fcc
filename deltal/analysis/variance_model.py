"""Real-model variance lab (paper section 2.2, Figure 2): per-response gradient variance against response length.

For one prompt, sample N responses from a Hugging Face causal LM, then compute each response's unnormalised
policy gradient g_i = ∇_θ Σ_t log π(y_t | y_<t) · A_i restricted to the chosen parameters (default: the last
layer's q/k/v projection weights), with A_i = 1, or the GRPO advantage (r_i − mean r) / std r when a reward is
given. log π uses the sampling temperature, as verl's actor does. From the stacked gradients (N, P) we report:

* each response's squared deviation ||g_i − ḡ||² from the mean gradient ḡ, a linear fit against length, and R²;
* the power law Var(g_i) ∝ L_i^β fitted in log-log space with a confidence interval, and the ΔL exponent it
  suggests, α = β (`deltal.analysis.variance_fit`);
* per aggregator, the empirical expectation scale, variance and CV of ĝ = Σ x_i g_i over ``resamples`` groups of
  G responses drawn with replacement from the N (the i.i.d. model of the paper), computed through the Gram matrix
  K = g gᵀ so nothing of size P is kept per resample; the expectation scale is relative to ḡ;
* the CV the closed forms predict with V̂ = Σ_i ||g_i − ḡ||² / Σ_i L_i (the moment estimate of Var g_i = V·L_i)
  and ||μ|| = ||ḡ||, averaged over the same resamples.

With A = 1 the true expected gradient is 0 (E ∇log π = 0), so ḡ is noise and the CVs are large; pass a reward for
meaningful CVs. The variance-vs-length fit is meaningful either way.
Library module; command line: ``python -m deltal.analysis.variance model --out DIR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

import json
import logging
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from deltal.algorithm import aggregation_coefficients, linear_combination_moments
from deltal.analysis.checkpoints import VERL_HF_FOLDER
from deltal.analysis.variance_fit import PowerLawFit, alpha_override, corrected_variances, fit_power_law
from deltal.analysis.variance_synthetic import aggregator_names, parse_alphas
from deltal.cli import option
from deltal.sampling import SamplingSettings, generate_batch

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "Use 3 5 7 to make 22."
DEFAULT_MAX_NEW_TOKENS = 3072


@dataclass(frozen=True)
class ModelLabConfig:
    """Settings of one model run; every field is a command-line flag of the same name."""

    model: str | None = None
    """Local HF model directory (required; `python -m deltal.cpu.assets` builds the quickstart's tiny one)."""
    prompt: str = DEFAULT_PROMPT
    """User message; wrapped in the tokenizer's chat template when it has one (see raw_prompt)."""
    raw_prompt: bool = False
    """Feed the prompt text as is, without the chat template."""
    num_responses: int = 32
    """N, responses sampled for the prompt (the paper uses 128)."""
    max_new_tokens: int | None = None
    """Generation limit M; default min(3072, the model's context minus the prompt)."""
    temperature: float = 1.0
    """Sampling temperature (1 = the policy itself, as in RL rollouts)."""
    params: str | None = None
    """Regex over parameter names; default the last layer's q/k/v projection weights."""
    data_source: str | None = None
    """With ground_truth: score responses with deltal.rewards.compute_score and use GRPO advantages."""
    ground_truth: str | None = None
    """Ground truth passed to the reward (a JSON value is decoded, e.g. '{"target": 22, "numbers": [3, 5, 7]}')."""
    group_size: int = 8
    """G for the aggregator CVs."""
    resamples: int = 2000
    """Groups drawn (with replacement) to estimate each aggregator's variance."""
    alphas: tuple[float, ...] = field(default=(1.0, 0.75, 0.5), metadata=option(parse=parse_alphas))
    """ΔL exponents whose CV is reported."""
    gen_batch_size: int = 32
    """Responses generated per generate() call."""
    device: str = "cpu"
    """torch device for the model (cpu, cuda)."""
    seed: int = 0
    """Seed of sampling and resampling."""


@dataclass
class Responses:
    """Sampled responses of one prompt."""

    prompt_ids: torch.Tensor  # (P,)
    tokens: list[torch.Tensor]  # N tensors of (L_i,), EOS included when the response ended
    texts: list[str]
    max_new_tokens: int

    @property
    def lengths(self) -> torch.Tensor:
        return torch.tensor([len(tokens) for tokens in self.tokens], dtype=torch.float64)  # (N,)


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r2: float


def default_param_pattern(model: torch.nn.Module) -> str:
    """Regex for the last decoder layer's q/k/v projection weights (Qwen2/Llama naming)."""
    layers = getattr(model.config, "num_hidden_layers", None)
    if layers is None:
        raise ValueError("the model config has no num_hidden_layers; pass --params REGEX to pick parameters")
    return rf"layers\.{layers - 1}\.self_attn\.[qkv]_proj\.weight$"


def select_parameters(model: torch.nn.Module, pattern: str) -> dict[str, torch.nn.Parameter]:
    """Parameters whose names match ``pattern`` (re.search); all others stop requiring grad to save memory."""
    regex = re.compile(pattern)
    chosen = {}
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(bool(regex.search(name)))
        if parameter.requires_grad:
            chosen[name] = parameter
    if not chosen:
        sample = [name for name, _ in list(model.named_parameters())[:6]]
        raise ValueError(f"--params {pattern!r} matches no parameter (names look like {sample}); fix the regex")
    return chosen


def encode_prompt(tokenizer, prompt: str, raw: bool) -> torch.Tensor:
    """Prompt token ids (P,), through the chat template unless ``raw`` or the tokenizer has none."""
    if not raw and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = prompt
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if ids.numel() == 0:
        raise ValueError("the prompt encodes to no tokens; pass a non-empty --prompt")
    return ids


def resolve_max_new_tokens(model: torch.nn.Module, prompt_length: int, requested: int | None) -> int:
    """The generation limit: the request, or min(3072, context − prompt); raise if it does not fit the context."""
    context = getattr(model.config, "max_position_embeddings", None)
    room = None if context is None else context - prompt_length
    if requested is None:
        requested = DEFAULT_MAX_NEW_TOKENS if room is None else min(DEFAULT_MAX_NEW_TOKENS, room)
    if requested < 2 or (room is not None and requested > room):
        raise ValueError(
            f"--max-new-tokens {requested} does not fit: the model's context is {context} and the prompt takes "
            f"{prompt_length} tokens; pass a value in [2, {room}]"
        )
    return requested


@torch.no_grad()
def sample_continuations(
    model, tokenizer, prompt_ids: torch.Tensor, count: int, max_new_tokens: int, temperature: float, batch_size: int
) -> list[torch.Tensor]:
    """``count`` responses to one prompt (P,), each cut after its first EOS (kept, as verl does): (L_i,) tensors.

    On CPU this is the CPU rollout's own sampler (``deltal.sampling``, torch only, ~15x faster than
    transformers' ``generate`` on the trace model's 448-token responses, docs/experiments.md 2026-12-03); elsewhere
    transformers' ``generate``.
    """
    device = next(model.parameters()).device
    eos_id = tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    if eos_id is None:
        raise ValueError("the tokenizer has no eos_token; set one so responses can end")
    tokens: list[torch.Tensor] = []
    for start in range(0, count, batch_size):
        size = min(batch_size, count - start)
        if device.type == "cpu":
            sampled = generate_batch(
                model,
                [prompt_ids.tolist()] * size,
                [max_new_tokens] * size,
                SamplingSettings(temperature=temperature),
                {eos_id},
                pad_id,
            )
            tokens.extend(torch.tensor(response.token_ids, dtype=torch.long) for response in sampled)
            continue
        inputs = prompt_ids.to(device)[None].expand(size, -1)
        output = model.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            do_sample=True,
            temperature=temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        for row in output[:, prompt_ids.numel() :].cpu():  # (T,) generated part, padded after EOS
            ends = (row == eos_id).nonzero()
            length = int(ends[0]) + 1 if ends.numel() else row.numel()
            tokens.append(row[:length].clone())
    return tokens


def sample_responses(model, tokenizer, config: ModelLabConfig) -> Responses:
    """Sample N responses to the configured prompt at the configured temperature."""
    prompt_ids = encode_prompt(tokenizer, config.prompt, config.raw_prompt)
    max_new_tokens = resolve_max_new_tokens(model, prompt_ids.numel(), config.max_new_tokens)
    torch.manual_seed(config.seed)
    tokens = sample_continuations(
        model, tokenizer, prompt_ids, config.num_responses, max_new_tokens, config.temperature, config.gen_batch_size
    )
    texts = [tokenizer.decode(response, skip_special_tokens=True) for response in tokens]
    return Responses(prompt_ids=prompt_ids, tokens=tokens, texts=texts, max_new_tokens=max_new_tokens)


def reward_advantages(responses: Responses, data_source: str | None, ground_truth: str | None) -> tuple[list, list]:
    """(rewards, advantages): GRPO advantages from deltal's reward, or A = 1 (rewards None) without one."""
    if data_source is None and ground_truth is None:
        return [None] * len(responses.tokens), [1.0] * len(responses.tokens)
    if data_source is None or ground_truth is None:
        raise ValueError("pass both --data-source and --ground-truth to use reward-based advantages")
    from deltal.rewards import compute_score

    try:
        truth = json.loads(ground_truth)
    except json.JSONDecodeError:
        truth = ground_truth  # a plain string answer, e.g. a math result
    rewards = []
    for text in responses.texts:
        result = compute_score(data_source, text, truth)
        rewards.append(float(result["score"] if isinstance(result, dict) else result))
    values = torch.tensor(rewards, dtype=torch.float64)
    spread = float(values.std()) if values.numel() > 1 else 0.0
    if spread == 0.0:
        raise ValueError(
            f"all {len(rewards)} responses got reward {rewards[0]:g}, so every GRPO advantage is 0; sample more "
            "responses, raise --temperature, or drop --data-source to use A = 1"
        )
    advantages = ((values - values.mean()) / spread).tolist()
    return rewards, advantages


def response_gradients(
    model, parameters: dict[str, torch.nn.Parameter], responses: Responses, advantages: list[float], temperature: float
) -> torch.Tensor:
    """Stack g_i = ∇ Σ_t log π(y_t) · A_i over the chosen parameters: (N, P) float32 on the model's device."""
    device = next(iter(parameters.values())).device
    prompt = responses.prompt_ids.to(device)
    rows = []
    for tokens, advantage in tqdm(
        list(zip(responses.tokens, advantages, strict=True)), desc="per-response gradients", unit="resp"
    ):
        tokens = tokens.to(device)
        sequence = torch.cat([prompt, tokens])[None]  # (1, P + L)
        logits = model(input_ids=sequence).logits[0, prompt.numel() - 1 : -1].float() / temperature  # (L, vocab)
        log_probs = torch.log_softmax(logits, dim=-1).gather(1, tokens[:, None]).squeeze(1)  # (L,)
        grads = torch.autograd.grad(log_probs.sum() * advantage, list(parameters.values()))
        rows.append(torch.cat([grad.reshape(-1).float() for grad in grads]))
    return torch.stack(rows)


def squared_deviations(gradients: torch.Tensor) -> torch.Tensor:
    """||g_i − ḡ||² per response: (N,) float64 on CPU."""
    mean = gradients.mean(dim=0)
    return torch.stack([(row - mean).double().square().sum() for row in gradients]).cpu()


def linear_fit(x: torch.Tensor, y: torch.Tensor) -> LinearFit:
    """Least-squares y ≈ slope·x + intercept and R²; raises when x is constant (no length spread to fit)."""
    x, y = x.double(), y.double()
    x_centered, y_centered = x - x.mean(), y - y.mean()
    spread = float(x_centered.square().sum())
    if spread == 0.0:
        raise ValueError(
            f"all responses have length {int(x[0])}, so variance cannot be fitted against length; raise "
            "--max-new-tokens, --num-responses or --temperature"
        )
    slope = float((x_centered * y_centered).sum()) / spread
    intercept = float(y.mean()) - slope * float(x.mean())
    total = float(y_centered.square().sum())
    residual = float((y - (slope * x + intercept)).square().sum())
    r2 = 1.0 - residual / total if total > 0 else math.nan
    return LinearFit(slope=slope, intercept=intercept, r2=r2)


def uniform_picks(count: int, resamples: int, group_size: int, seed: int) -> torch.Tensor:
    """Indices of ``resamples`` groups of ``group_size`` responses drawn with replacement from ``count``: (R, G)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, count, (resamples, group_size), generator=generator)


def aggregator_moments(
    gram: torch.Tensor,
    lengths: torch.Tensor,
    token_variance: float,
    config: ModelLabConfig,
    max_response_length: int,
    picks: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Empirical and closed-form moments of each aggregator over resampled groups of the N responses.

    ``picks`` (R, G) holds the responses of each resampled group (default: ``config.resamples`` groups of
    ``config.group_size`` drawn uniformly with replacement). With C (R, N) the coefficients of the R groups (repeats
    summed), ĝ_r = C_r g, so Var = mean_r (C_r − c̄) K (C_r − c̄)ᵀ, ||E ĝ||² = c̄ K c̄ᵀ, and
    E ĝ·ḡ / ||ḡ||² = c̄ K 1 N / (1ᵀ K 1).
    """
    lengths = lengths.double()
    count = lengths.numel()
    if picks is None:
        picks = uniform_picks(count, config.resamples, config.group_size, config.seed)
    resamples = picks.shape[0]
    ones = torch.ones(count, dtype=torch.float64)
    mean_norm_sq = float(ones @ gram @ ones) / count**2  # ||ḡ||²
    rows = []
    for name, aggregator, alpha in aggregator_names(config.alphas):
        coefficients = torch.zeros(resamples, count, dtype=torch.float64)  # (R, N)
        closed_cv = 0.0
        for index in range(resamples):
            group_lengths = lengths[picks[index]]
            weights = aggregation_coefficients(aggregator, group_lengths, max_response_length, alpha)
            coefficients[index].index_add_(0, picks[index], weights)
            if token_variance > 0 and mean_norm_sq > 0:
                closed_cv += linear_combination_moments(
                    weights, group_lengths, token_variance, grad_norm=mean_norm_sq**0.5
                ).cv
        centre = coefficients.mean(dim=0)  # (N,)
        centred = coefficients - centre
        variance = float(((centred @ gram) * centred).sum(dim=1).mean())
        expectation_norm = float(centre @ gram @ centre) ** 0.5
        scale = float(centre @ gram @ ones) / count / mean_norm_sq if mean_norm_sq > 0 else math.nan
        rows.append(
            {
                "aggregator": name,
                "expectation_scale": scale,
                "variance": variance,
                "cv": variance**0.5 / expectation_norm if expectation_norm > 0 else math.inf,
                "cv_closed_form": closed_cv / resamples if token_variance > 0 else math.nan,
            }
        )
    return pd.DataFrame(rows)


# Folders verl writes below a checkpoint's step folder; they say nothing about which model it is.
CHECKPOINT_INNER_FOLDERS = VERL_HF_FOLDER.parts


def model_label(model: str) -> str:
    """A figure title's name for ``model``: a folder's own name, or ``<run> global_step_<n>`` for a verl checkpoint
    (``<run>/checkpoints/global_step_<n>/actor/huggingface``), whose last folder is always ``huggingface``."""
    path = Path(model)
    while path.name in CHECKPOINT_INNER_FOLDERS and path.parent != path:
        path = path.parent
    if path.name.startswith("global_step_") and path.parent.name == "checkpoints":
        return f"{path.parent.parent.name} {path.name}"
    return path.name


def load_model_and_tokenizer(config: ModelLabConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load the model (fp32 on CPU, the checkpoint's dtype elsewhere), its tokenizer, and return its path too."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = config.model
    if path is None:
        # Analysis never builds models (that is the CPU backend's job): the caller names one.
        raise ValueError(
            "--model is required: a local Hugging Face model directory. For the CPU quickstart's tiny model, run "
            "`python -m deltal.cpu.assets` (it builds the model offline and prints its directory) and pass that."
        )
    if not Path(path).is_dir():
        raise FileNotFoundError(f"--model {path} is not a local directory; download the model first (no hub access)")
    tokenizer = AutoTokenizer.from_pretrained(path)
    dtype = torch.float32 if config.device == "cpu" else "auto"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(config.device)
    model.eval()
    return model, tokenizer, path


def plot_variance_vs_length(per_response: pd.DataFrame, fit: LinearFit, title: str, path: Path) -> None:
    """Scatter of ||g_i − ḡ||² against L_i with the fitted line and R² (paper Figure 2)."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter(per_response["length"], per_response["sq_deviation"], s=14, alpha=0.7, label="responses")
    span = torch.linspace(float(per_response["length"].min()), float(per_response["length"].max()), 50)
    axes.plot(span, fit.slope * span + fit.intercept, color="tab:red", label=f"fit, R² = {fit.r2:.3f}")
    axes.set_xlabel("response length (tokens)")
    axes.set_ylabel("||g_i − ḡ||²")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.savefig(path, dpi=120)


def run_model_lab(config: ModelLabConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Sample, differentiate and summarise. Returns (per-response rows, per-aggregator rows, summary dict)."""
    if config.num_responses < 3:
        raise ValueError("--num-responses must be >= 3 to fit a line")
    if config.group_size < 1 or config.resamples < 2 or config.temperature <= 0:
        raise ValueError("--group-size must be >= 1, --resamples >= 2 and --temperature > 0")
    model, tokenizer, path = load_model_and_tokenizer(config)
    pattern = config.params or default_param_pattern(model)
    parameters = select_parameters(model, pattern)
    responses = sample_responses(model, tokenizer, config)
    rewards, advantages = reward_advantages(responses, config.data_source, config.ground_truth)
    gradients = response_gradients(model, parameters, responses, advantages, config.temperature)
    lengths = responses.lengths
    deviations = squared_deviations(gradients)
    fit = linear_fit(lengths, deviations)
    variance_estimates = corrected_variances(deviations)
    try:
        power_law = asdict(fit_power_law(lengths, variance_estimates))
        override = alpha_override(PowerLawFit(**power_law))
    except ValueError as err:  # e.g. too few positive estimates: keep the lab's other results, say why
        logger.warning("power-law fit skipped: %s", err)
        power_law, override = None, f"none (power-law fit skipped: {err})"
    gram = (gradients @ gradients.T).double().cpu()  # (N, N)
    del gradients
    token_variance = float(deviations.sum() / lengths.sum())
    moments = aggregator_moments(gram, lengths, token_variance, config, responses.max_new_tokens)
    per_response = pd.DataFrame(
        {
            "response": range(len(responses.tokens)),
            "length": lengths.to(torch.int64).tolist(),
            "sq_deviation": deviations.tolist(),
            "variance_estimate": variance_estimates.tolist(),
            "reward": rewards,
            "advantage": advantages,
        }
    )
    summary = {
        "model": path,
        "params": pattern,
        "param_names": list(parameters),
        "num_params": sum(parameter.numel() for parameter in parameters.values()),
        "num_responses": len(responses.tokens),
        "max_new_tokens": responses.max_new_tokens,
        "mean_length": float(lengths.mean()),
        "truncated_fraction": float((lengths == responses.max_new_tokens).double().mean()),
        "slope": fit.slope,
        "intercept": fit.intercept,
        "r2": fit.r2,
        "power_law": power_law,
        "alpha_override": override,
        "token_variance_estimate": token_variance,
        "mean_gradient_norm": float(gram.sum()) ** 0.5 / len(responses.tokens),
        "cv": dict(zip(moments["aggregator"], moments["cv"], strict=True)),
        "cv_closed_form": dict(zip(moments["aggregator"], moments["cv_closed_form"], strict=True)),
    }
    return per_response, moments, summary
