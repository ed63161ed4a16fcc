"""Shared fixture for the data tests: the tokenizer of the countdown_trace tiny model, built once per session."""

import pytest


@pytest.fixture(scope="session")
def tiny_trace_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from deltal.cpu.warmstart_trace import build_trace_assets

    return AutoTokenizer.from_pretrained(build_trace_assets(tmp_path_factory.mktemp("trace_assets") / "tiny"))
