"""Tiny local assets for CPU runs: a byte-level BPE tokenizer and a tiny Qwen2 model, built with no network.

``build_tiny_assets(out_dir, seed)`` writes a Hugging Face directory that ``AutoTokenizer`` and
``AutoModelForCausalLM.from_pretrained`` load offline. It differs from a downloaded checkpoint in two ways:

* the tokenizer is trained here, with the ``tokenizers`` library, on chat-formatted easy-CountDown text
  (or on a corpus the caller passes). It keeps what verl needs for ``model_type=qwen2``: Qwen2's split regex,
  byte-level BPE (so ``"\\n"`` is exactly one token, checked by ``verl.utils.tokenizer.continuous_token``),
  the specials ``<|endoftext|>`` (pad), ``<|im_start|>``, ``<|im_end|>`` (EOS) and a ChatML chat template;
* the model is a freshly initialised Qwen2 (hidden 128, 2 layers, 4 heads / 2 KV heads, MLP 512, tied
  embeddings, fp32; about 0.5 M parameters), sized by ``docs/cpu-quickstart-sizing.md`` §1.

Everything is a pure function of the arguments: the same seed gives the same token ids and the same weights.
A ``deltal_assets.json`` manifest records the build spec; a second call with the same spec reuses the directory.

Command line (prints the directory):
    python -m deltal.cpu.assets --out .deltal/assets/tiny-qwen2-seed0 --seed 0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, Qwen2ForCausalLM, Qwen2Tokenizer

import argparse
import json
import logging
import random
import shutil
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from deltal.cli import add_options, settings_from
from deltal.data.chatml import CHATML_TEMPLATE, IM_END, IM_START, chatml_exchange

logger = logging.getLogger(__name__)

# Where launch scripts cache assets unless told otherwise (gitignored).
DEFAULT_ASSETS_ROOT = Path(".deltal/assets")
MANIFEST_NAME = "deltal_assets.json"
# Bump when the build recipe changes, so cached directories from an older recipe are rebuilt.
RECIPE_VERSION = 1

PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

# Qwen2's pre-tokenizer split (a fact of the Qwen2 tokenizer): digits split one by one, letters grouped,
# newlines kept apart. verl's qwen2 helpers assume this shape.
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of the tiny Qwen2 model and its tokenizer; every field is part of the cache key."""

    vocab_size: int = 300  # 256 byte symbols + 3 specials + BPE merges
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 256
    corpus_problems: int = 2000  # easy-CountDown problems in the default tokenizer corpus


def _random_expression(rng: random.Random, numbers: list[int]) -> tuple[str, float]:
    """Combine ``numbers`` (in a random order) with random operators; return (text, value)."""
    order = numbers[:]
    rng.shuffle(order)
    text, value = str(order[0]), float(order[0])
    for number in order[1:]:
        op = rng.choice("+-*/")
        if op == "/" and number == 0:
            op = "+"
        value = {"+": value + number, "-": value - number, "*": value * number, "/": value / number}[op]
        # Parenthesise the running expression so the text evaluates in the order it was built.
        text = f"({text}){op}{number}" if op in "*/" and any(c in text for c in "+-") else f"{text}{op}{number}"
    return text, value


def countdown_corpus(seed: int, n_problems: int) -> list[str]:
    """Chat-formatted easy-CountDown dialogues (prompt ``Use a b c to make T.``, answer in tags) as BPE text.

    Only the tokenizer sees this text; the training data comes from ``deltal.data.countdown``.
    """
    rng = random.Random(seed)
    texts: list[str] = []
    while len(texts) < n_problems:
        numbers = [rng.randint(1, 10) for _ in range(3)]
        expression, value = _random_expression(rng, numbers)
        if value != int(value) or not 1 <= value <= 100:
            continue
        prompt = f"Use {' '.join(map(str, numbers))} to make {int(value)}."
        texts.append(chatml_exchange(prompt, f"<answer>{expression}</answer>"))
    return texts


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> Qwen2Tokenizer:
    """Train a byte-level BPE with Qwen2's pre-tokenizer and wrap it as ``transformers.Qwen2Tokenizer``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold the 256 byte symbols and {len(SPECIAL_TOKENS)} specials; "
            f"use vocab_size >= {256 + len(SPECIAL_TOKENS)}."
        )
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        # All 256 byte symbols, so every string (and "\n" as a single token) is encodable.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(corpus), trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    # tokenizers 0.22 stores merges as [left, right] pairs; Qwen2Tokenizer wants tuples.
    merges = [tuple(pair) if isinstance(pair, list) else tuple(pair.split(" ")) for pair in state["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token=None,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        extra_special_tokens=[IM_START],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_model(spec: TinyModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int) -> Qwen2ForCausalLM:
    """Randomly initialise the tiny Qwen2 model (fp32) with ``torch.manual_seed(seed)``."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Rollouts read EOS from the generation config; keep it the chat turn end.
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None
    )
    return model


def _manifest(spec: TinyModelSpec, seed: int, corpus_texts: list[str] | None) -> dict:
    import hashlib

    corpus_key = (
        "countdown_easy" if corpus_texts is None else hashlib.sha256("\x00".join(corpus_texts).encode()).hexdigest()
    )
    return {"recipe_version": RECIPE_VERSION, "seed": seed, "spec": asdict(spec), "corpus": corpus_key}


def build_tiny_assets(
    out_dir: Path,
    seed: int = 0,
    spec: TinyModelSpec | None = None,
    corpus: Iterable[str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Build (or reuse) a tokenizer + tiny Qwen2 model directory at ``out_dir`` and return its path.

    Args:
        out_dir: HF directory to write; reused as is when its manifest matches the requested build.
        seed: seeds the tokenizer corpus and the model initialisation.
        spec: model/tokenizer shape; ``TinyModelSpec()`` by default.
        corpus: texts to train the tokenizer on; easy-CountDown chat text by default.
        overwrite: rebuild even when a matching build is cached.
    """
    spec = spec or TinyModelSpec()
    out_dir = Path(out_dir)
    corpus_texts = list(corpus) if corpus is not None else None
    manifest = _manifest(spec, seed, corpus_texts)
    manifest_path = out_dir / MANIFEST_NAME
    if not overwrite and manifest_path.exists() and json.loads(manifest_path.read_text()) == manifest:
        logger.info("Reusing tiny assets at %s", out_dir)
        return out_dir
    if out_dir.exists():
        if any(out_dir.iterdir()) and not manifest_path.exists():
            raise FileExistsError(
                f"{out_dir} exists and was not written by build_tiny_assets (no {MANIFEST_NAME}); "
                "pass an empty or new directory."
            )
        shutil.rmtree(out_dir)

    texts = corpus_texts if corpus_texts is not None else countdown_corpus(seed, spec.corpus_problems)
    if not texts:
        raise ValueError("The tokenizer corpus is empty; pass at least one text or corpus=None for the default.")
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    newline_ids = tokenizer.encode("\n", add_special_tokens=False)
    if len(newline_ids) != 1:
        raise RuntimeError(f'"\\n" encodes to {newline_ids}; verl needs one token for qwen2 tokenizers.')
    model = build_model(spec, tokenizer, seed)

    # Write into a sibling temp dir first so an interrupted build never leaves a half directory with a manifest.
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    tokenizer.save_pretrained(staging)
    model.save_pretrained(staging)
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    staging.rename(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("Built tiny assets at %s (vocab %d, %d parameters)", out_dir, len(tokenizer), n_params)
    return out_dir


def default_assets_dir(seed: int = 0, root: Path = DEFAULT_ASSETS_ROOT) -> Path:
    """The cache directory the CPU launch scripts use for ``seed``."""
    return Path(root) / f"tiny-qwen2-seed{seed}"


@dataclass(frozen=True, kw_only=True)
class AssetsCommand:
    """Options of ``python -m deltal.cpu.assets``."""

    out: Path | None = None
    """HF directory to write (default .deltal/assets/tiny-qwen2-seed<SEED>, the launch scripts' cache)."""
    seed: int = 0
    """Seed for the tokenizer corpus and model init."""
    overwrite: bool = False
    """Rebuild even if a matching build is cached."""


def build_parser() -> argparse.ArgumentParser:
    """The command's parser: one flag per AssetsCommand field, helped by its docstring."""
    return add_options(argparse.ArgumentParser(description=__doc__.splitlines()[0]), AssetsCommand)


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the tiny assets and print their directory."""
    command = settings_from(build_parser().parse_args(argv), AssetsCommand)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = build_tiny_assets(
        command.out or default_assets_dir(command.seed), seed=command.seed, overwrite=command.overwrite
    )
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
