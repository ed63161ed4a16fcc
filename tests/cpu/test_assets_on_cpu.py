"""Tiny CPU assets: deterministic for a seed, loadable offline by the Auto classes, and usable by verl.

Properties checked: the same seed gives byte-identical tokenizers and identical weights, another seed gives
other weights; "\\n" is one token and text round-trips; ChatML and EOS/pad are what verl's qwen2 path needs;
a matching cached build is reused and a foreign directory is never overwritten.
"""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from deltal.cpu.assets import MANIFEST_NAME, PAD_TOKEN, TinyModelSpec, build_tiny_assets, countdown_corpus
from deltal.data.chatml import IM_END, chatml_exchange


@pytest.fixture
def assets_dir(tiny_assets):
    return tiny_assets  # the session's seed-0 build (tests/conftest.py); these tests only read it


def _state_dict(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_same_seed_gives_identical_tokenizer_and_weights(assets_dir, tmp_path):
    again = build_tiny_assets(tmp_path / "again", seed=0)
    assert (again / "tokenizer.json").read_bytes() == (assets_dir / "tokenizer.json").read_bytes()
    first, second = _state_dict(assets_dir), _state_dict(again)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_other_seed_gives_other_weights(assets_dir, tmp_path):
    other = build_tiny_assets(tmp_path / "seed1", seed=1)
    first, second = _state_dict(assets_dir), _state_dict(other)
    assert not torch.equal(first["model.embed_tokens.weight"], second["model.embed_tokens.weight"])


def test_newline_is_one_token_and_text_round_trips(assets_dir):
    tokenizer = AutoTokenizer.from_pretrained(assets_dir)
    assert len(tokenizer.encode("\n", add_special_tokens=False)) == 1
    for text in [*countdown_corpus(seed=7, n_problems=5), "héllo wörld ∑ 日本\t\r\n  x", "Use 10 2 3 to make 17."]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text


def test_reloaded_assets_are_a_chatml_qwen2_with_turn_end_eos(assets_dir):
    tokenizer = AutoTokenizer.from_pretrained(assets_dir)
    model = AutoModelForCausalLM.from_pretrained(assets_dir)
    assert model.config.model_type == "qwen2"
    assert model.dtype == torch.float32
    assert model.config.tie_word_embeddings
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == PAD_TOKEN
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert model.config.vocab_size == len(tokenizer)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Use 7 1 5 to make 35."}], tokenize=False, add_generation_prompt=True
    )
    assert prompt == "<|im_start|>user\nUse 7 1 5 to make 35.<|im_end|>\n<|im_start|>assistant\n"

    # Special tokens are single ids and disappear when the reward decodes with skip_special_tokens.
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\nUse 7 1 5 to make 35.\nassistant\n"


def test_corpus_exchanges_render_as_the_tokenizers_chat_template(assets_dir):
    # The corpus builders write ChatML by hand (chatml_exchange); the tokenizer renders it from its template.
    tokenizer = AutoTokenizer.from_pretrained(assets_dir)
    messages = [{"role": "user", "content": "Use 7 1 5 to make 35."}, {"role": "assistant", "content": "7*5"}]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == chatml_exchange("Use 7 1 5 to make 35.", "7*5")


def test_matching_cached_build_is_reused(assets_dir):
    before = (assets_dir / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_assets(assets_dir, seed=0) == assets_dir
    assert (assets_dir / "model.safetensors").stat().st_mtime_ns == before
    assert json.loads((assets_dir / MANIFEST_NAME).read_text())["seed"] == 0


def test_foreign_directory_is_not_overwritten(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not written by build_tiny_assets"):
        build_tiny_assets(foreign, seed=0)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_too_small_vocab_is_refused_with_the_minimum(tmp_path):
    with pytest.raises(ValueError, match="vocab_size >= 259"):
        build_tiny_assets(tmp_path / "small", spec=TinyModelSpec(vocab_size=100))
    assert not (tmp_path / "small").exists()
