"""Rows and parquet files in verl's RL dataset format, shared by every deltal data builder.

verl 0.9.1's ``RLHFDataset`` (``verl/utils/dataset/rl_dataset.py``) reads parquet rows with these columns:

- ``data_source``: routes the row to its reward (``deltal.rewards.SCORERS``);
- ``prompt``: a list of chat messages ``{"role": ..., "content": ...}``;
- ``ability``: a free-form task label;
- ``reward_model``: ``{"style": "rule", "ground_truth": ...}``, handed to the reward function as ``ground_truth``;
- ``extra_info``: ``{"split": ..., "index": ...}`` plus builder-specific keys; verl uses ``index`` as the row id.

Base-model prompts (no chat template)
-------------------------------------
verl never feeds ``prompt`` to the model as text: the v1 trainer's agent loop renders the messages with
``tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)`` (through
``verl/utils/tokenizer/continuous_token.py``), and ``RLHFDataset`` uses the same call to filter overlong prompts.
The paper trains BASE models on a plain-text prompt, so that text must reach the model with nothing around it.
deltal stores such a prompt as one user message (:func:`raw_prompt_messages`) and the launch command passes
:data:`RAW_PROMPT_TEMPLATE_OVERRIDE`, i.e. the hydra override (the key exists in verl's ``ppo_trainer`` config)::

    actor_rollout_ref.model.custom_chat_template='{% for message in messages %}{{ message.content }}{% endfor %}'

verl applies ``custom_chat_template`` in both places that render prompts: ``HFModelConfig.__post_init__`` sets it on
the tokenizer the trainer hands to ``RLHFDataset``, and ``AgentLoopWorker.__init__`` sets it on the rollout tokenizer.
:data:`RAW_PROMPT_CHAT_TEMPLATE` emits the message contents verbatim and adds no generation prompt, so the prompt
token ids are exactly ``tokenizer.encode(text, add_special_tokens=False)``. The template uses no quote characters,
so the override above passes through hydra's parser and a bash double-quoted word unchanged.

Library module; the builders (``python -m deltal.data.countdown``, ...) call it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)

# Jinja chat template that renders the messages' contents back to back with nothing added: no role headers, no
# special tokens, no generation prompt. Pass it as actor_rollout_ref.model.custom_chat_template for base models.
RAW_PROMPT_CHAT_TEMPLATE = "{% for message in messages %}{{ message.content }}{% endfor %}"
# The same template as one hydra command-line override, quoted for hydra's parser.
RAW_PROMPT_TEMPLATE_OVERRIDE = f"actor_rollout_ref.model.custom_chat_template='{RAW_PROMPT_CHAT_TEMPLATE}'"

RL_COLUMNS = ("data_source", "prompt", "ability", "reward_model", "extra_info")


def raw_prompt_messages(text: str) -> list[dict[str, str]]:
    """Store a plain-text (base-model) prompt as one user message, which RAW_PROMPT_CHAT_TEMPLATE passes through."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"a raw prompt must be a non-empty string, got {text!r}")
    return [{"role": "user", "content": text}]


def chat_messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """Build instruct-model chat messages: an optional system turn, then the user turn."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return messages


def _check_messages(prompt: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    if isinstance(prompt, str) or not isinstance(prompt, Sequence) or len(prompt) == 0:
        raise ValueError(
            "prompt must be a non-empty list of chat messages {'role': ..., 'content': ...}; "
            "wrap plain text with raw_prompt_messages(text) or chat_messages(user, system)"
        )
    messages = []
    for message in prompt:
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise ValueError(f"every prompt message needs a string 'role' and 'content', got {message!r}")
        if not isinstance(message.get("content"), str):
            raise ValueError(f"every prompt message needs a string 'role' and 'content', got {message!r}")
        messages.append({"role": message["role"], "content": message["content"]})
    return messages


def rl_row(
    data_source: str,
    prompt: Sequence[Mapping[str, Any]],
    ability: str,
    ground_truth: Any,
    split: str,
    index: int,
    extra_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One row of a verl RL parquet file; ``ground_truth`` is what the reward function receives."""
    if not data_source:
        raise ValueError("data_source must name a key of deltal.rewards.SCORERS, got an empty value")
    if ground_truth is None:
        raise ValueError("ground_truth must not be None: the reward function needs it to score responses")
    info = {"split": split, "index": int(index)}
    if extra_info:
        clashes = set(extra_info) & set(info)
        if clashes:
            raise ValueError(f"extra_info must not set {sorted(clashes)}: rl_row fills them from split/index")
        info.update(extra_info)
    return {
        "data_source": data_source,
        "prompt": _check_messages(prompt),
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": info,
    }


def write_parquet(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write RL rows (from rl_row) to ``path``, creating its folder; returns the path written."""
    rows = list(rows)
    if not rows:
        raise ValueError(f"refusing to write an empty dataset to {path}: the builder produced no rows")
    missing = [column for column in RL_COLUMNS if column not in rows[0]]
    if missing:
        raise ValueError(f"rows lack verl's RL columns {missing}; build them with deltal.data.rl_format.rl_row")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    logger.info("wrote %d rows to %s", len(rows), path)
    return path


def read_parquet(path: str | Path) -> list[dict[str, Any]]:
    """Read rows written by write_parquet back as plain Python dicts (for checks and tests)."""
    return pq.read_table(path).to_pylist()
