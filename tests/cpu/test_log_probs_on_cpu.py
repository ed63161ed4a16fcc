"""On CPU, verl's fallback log-prob function takes chunks of rows instead of one row per call, bit for bit the same.

Properties: ``row_chunked_log_probs`` equals verl 0.9.1's ``logprobs_from_logits_v2``
(``verl/utils/torch_functional.py``) exactly, values and gradients, for the shapes the CPU backend's actor passes
(token rows × the quickstart's vocabulary, also over several chunks), computed with one and with two threads; bf16
logits and, with several threads, rows long enough for torch to split their reduction go to verl's own function;
the CPU backend installs the function where verl's ``logprobs_from_logits`` looks it up, once.
"""

import pytest
import torch
import verl.utils.torch_functional as functional

from deltal.cpu import log_probs
from deltal.cpu.backend import register_cpu_backend
from deltal.cpu.log_probs import ROW_SPLIT_ELEMENTS, row_chunked_log_probs, use_row_chunked_log_probs

VERLS = getattr(functional.logprobs_from_logits_v2, "__wrapped__", functional.logprobs_from_logits_v2)


def _values_and_gradients(function, logits, labels, weights):
    logits = logits.clone().requires_grad_()
    values = function(logits, labels)
    (values * weights).sum().backward()
    return values.detach(), logits.grad


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    ("shape", "chunk_elements"), [((400, 300), 1 << 24), ((2, 45, 300), 1 << 24), ((300, 300), 3000)]
)
def test_same_values_and_gradients_as_verls_row_loop(monkeypatch, threads, shape, chunk_elements):
    monkeypatch.setattr(log_probs, "CHUNK_ELEMENTS", chunk_elements)  # 3000: ten rows per chunk, 30 chunks
    generator = torch.Generator().manual_seed(len(shape))
    logits = 4 * torch.randn(shape, generator=generator)
    labels = torch.randint(0, shape[-1], shape[:-1], generator=generator)
    weights = torch.randn(shape[:-1], generator=generator)
    # verl's loop reduces each 300-value row on one thread whatever the thread count; it runs on one here because
    # its 5 800-node backward is slow with two spinning threads on a busy box. The chunks do run on `threads`.
    verls = _values_and_gradients(VERLS, logits, labels, weights)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = _values_and_gradients(row_chunked_log_probs, logits, labels, weights)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(ours[0], verls[0]) and torch.equal(ours[1], verls[1])


def test_cases_without_the_identity_go_to_verls_function(monkeypatch):
    calls = []

    def original(logits, labels):
        calls.append(logits.shape)
        return VERLS(logits, labels)

    row_chunked_log_probs(torch.randn(4, 300, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.long), original)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    long_rows = torch.randn(2, ROW_SPLIT_ELEMENTS)
    row_chunked_log_probs(long_rows, torch.zeros(2, dtype=torch.long), original)
    assert calls == [torch.Size([4, 300]), torch.Size([2, ROW_SPLIT_ELEMENTS])]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    row_chunked_log_probs(long_rows, torch.zeros(2, dtype=torch.long), original)
    assert len(calls) == 2


def test_cpu_backend_installs_it_where_verl_looks_it_up_once():
    register_cpu_backend()
    installed = functional.logprobs_from_logits_v2
    use_row_chunked_log_probs()
    assert functional.logprobs_from_logits_v2 is installed and installed.__wrapped__ is VERLS
    logits, labels = torch.randn(3, 7, 300), torch.randint(0, 300, (3, 7))
    assert torch.equal(functional.logprobs_from_logits(logits, labels), VERLS(logits, labels))
