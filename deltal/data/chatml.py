"""ChatML, the chat format of Qwen2 instruct models: its two markers, its Jinja template and one rendered exchange.

The tiny CPU tokenizer (``deltal.cpu.assets``) is trained on ChatML text built by the data builders
(``deltal.data.countdown_trace.corpus``) and by ``deltal.cpu.assets.countdown_corpus``, and keeps the markers as
special tokens; this module is the one place both take the format from.
"""

from __future__ import annotations

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# The template Qwen2 instruct tokenizers ship (a system turn is optional); the tiny tokenizer carries it too.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def chatml_exchange(user: str, assistant: str) -> str:
    """One user turn and its answer, rendered as CHATML_TEMPLATE renders them."""
    return f"{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n{assistant}{IM_END}\n"
