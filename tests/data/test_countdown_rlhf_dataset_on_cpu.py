"""CountDown parquet files load through verl's own RLHFDataset, and a base-model prompt reaches the model verbatim
when the raw chat template is set: in the dataset's length filter and in the agent loop's prompt tokenization."""

import json

import pytest
from omegaconf import OmegaConf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import Qwen2Tokenizer
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from deltal.data.countdown import base_prompt, build
from deltal.data.rl_format import RAW_PROMPT_CHAT_TEMPLATE, read_parquet

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def tiny_tokenizer():
    # A byte-level BPE trained here on task-like text (no downloads), wrapped as a transformers Qwen2 tokenizer.
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [base_prompt([44, 19, 35], 98), "Use 7 1 5 to make 35.", "<answer> (1 + 2) / 3 </answer>"] * 20
    backend.train_from_iterator(corpus, trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"], merges=merges, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    tokenizer.add_tokens(SPECIALS, special_tokens=True)
    tokenizer.chat_template = CHATML
    return tokenizer


def _dataset(path, tokenizer, tmp_path, max_prompt_length=4096):
    config = OmegaConf.create(
        {
            "max_prompt_length": max_prompt_length,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": 1,
            "cache_dir": str(tmp_path / "verl_cache"),
        }
    )
    return RLHFDataset(data_files=str(path), tokenizer=tokenizer, config=config)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(("variant", "template"), [("standard", "base"), ("standard", "instruct"), ("easy", None)])
def test_builder_output_loads_through_verl_rlhf_dataset(tiny_tokenizer, tmp_path, variant, template):
    train_path, _ = build(tmp_path / "data", train_size=12, test_size=4, template=template, seed=3, variant=variant)
    dataset = _dataset(train_path, tiny_tokenizer, tmp_path)
    assert len(dataset) == 12  # nothing dropped by verl's prompt-length filter
    rows = read_parquet(train_path)
    item = dataset[5]
    assert item["raw_prompt"] == rows[5]["prompt"]
    assert item["reward_model"]["ground_truth"] == rows[5]["reward_model"]["ground_truth"]
    assert item["index"] == 5
    assert item["data_source"] == ("countdown_easy" if variant == "easy" else "countdown")


def test_base_prompt_is_rendered_verbatim_with_the_raw_chat_template(tiny_tokenizer, tmp_path):
    tokenizer = tiny_tokenizer.__class__.from_pretrained(_save(tiny_tokenizer, tmp_path))
    tokenizer.chat_template = RAW_PROMPT_CHAT_TEMPLATE  # what actor_rollout_ref.model.custom_chat_template sets
    train_path, _ = build(tmp_path / "data", train_size=6, test_size=2, template="base", seed=5)
    text = read_parquet(train_path)[0]["prompt"][0]["content"]
    expected_ids = tokenizer.encode(text, add_special_tokens=False)

    # RLHFDataset: the length filter counts exactly the prompt's own tokens.
    assert len(_dataset(train_path, tokenizer, tmp_path, max_prompt_length=len(expected_ids))) >= 1
    messages = _dataset(train_path, tokenizer, tmp_path)[0]["raw_prompt"]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == text

    # Agent loop: verl's Continuous Token builder renders the rollout prompt ids.
    builder = create_continuous_token_builder(tokenizer, hf_model_type="qwen2")
    assert builder.build_initial_tokens(messages) == expected_ids
    assert text.endswith("Assistant: Let me solve this step by step.\n<think>")


def test_chatml_would_wrap_the_base_prompt_without_the_raw_template(tiny_tokenizer, tmp_path):
    # The reason the raw template exists: a chat template adds role headers around the plain-text prompt.
    text = base_prompt([1, 2, 3], 6)
    rendered = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )
    assert rendered != text and rendered.startswith("<|im_start|>user\n")


def _save(tokenizer, tmp_path):
    folder = tmp_path / "tokenizer"
    tokenizer.save_pretrained(folder)
    return folder
