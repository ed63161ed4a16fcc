"""verl's fallback per-token log-prob function without its per-row loop, on CPU: the same numbers, far less time.

verl 0.9.1 computes the actor's per-token log-probs (old_log_prob, update_actor, ref) with
``verl.utils.torch_functional.logprobs_from_logits``. With flash-attn's cross-entropy (GPU) or torch_npu it calls
those kernels; otherwise ``logprobs_from_logits_v2``, which for float32/64 logits calls ``torch.logsumexp`` once per
row of the logits ("loop to reduce peak mem consumption"). A quickstart micro-batch has about 5 800 token rows: 5 800
calls in the forward and as many autograd nodes in the backward, 0.1 s for a forward and 0.23 s for a forward and
backward on one core of the 2-vCPU box, against 4 and 10 ms for the same expression over all rows at once; about
0.65 s of a 4.5 s step (docs/cpu-step-profile.md, fifth round).

``use_row_chunked_log_probs()`` (called by ``deltal.cpu.backend.register_cpu_backend``, so only with
``VERL_PLATFORM=cpu``) puts ``row_chunked_log_probs`` in verl's module in place of ``logprobs_from_logits_v2``, the
one name ``logprobs_from_logits`` looks up there. It computes verl's expression, ``gather(logits, labels) -
logsumexp(logits)``, over chunks of rows. Each row's logsumexp is then the same reduction over the same values as in
verl's loop, so log-probs and gradients are bit-identical (``tests/cpu/test_log_probs_on_cpu.py``), and the chunks
bound the temporary memory as verl's loop does. verl's own function still serves every case where that identity
does not hold: other dtypes (bf16 takes verl's log_softmax loop), and rows of at least ``ROW_SPLIT_ELEMENTS`` values
with more than one torch thread, where torch splits one row's reduction across threads but not a chunk's. The pinned
verl version is checked by the backend before this runs.
"""

from __future__ import annotations

import torch

# torch splits a reduction over one row across threads once the row holds this many elements (at::internal::
# GRAIN_SIZE); below it, and with one thread, a row reduces alike alone or in a chunk.
ROW_SPLIT_ELEMENTS = 32768
# Elements of logits per logsumexp call: bounds the temporary memory (64 MiB of float32).
CHUNK_ELEMENTS = 1 << 24


def row_chunked_log_probs(logits: torch.Tensor, labels: torch.Tensor, original=None) -> torch.Tensor:
    """``log_softmax(logits)[labels]`` as verl's ``logprobs_from_logits_v2`` computes it, a chunk of rows per call."""
    vocab = logits.shape[-1]
    if logits.dtype not in (torch.float32, torch.float64) or (
        vocab >= ROW_SPLIT_ELEMENTS and torch.get_num_threads() > 1
    ):
        return original(logits, labels)
    rows = logits.reshape(-1, vocab)
    log_norm = torch.cat([torch.logsumexp(chunk, dim=-1) for chunk in rows.split(max(1, CHUNK_ELEMENTS // vocab))])
    picked = torch.gather(logits, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
    return picked - log_norm.view(logits.shape[:-1])


def use_row_chunked_log_probs() -> None:
    """Make verl's ``logprobs_from_logits`` use ``row_chunked_log_probs`` in this process (idempotent)."""
    import verl.utils.torch_functional as functional

    original = functional.logprobs_from_logits_v2
    if getattr(original, "_deltal_row_chunked", False):
        return

    def logprobs_from_logits_v2(logits, labels):
        return row_chunked_log_probs(logits, labels, original=original)

    logprobs_from_logits_v2._deltal_row_chunked = True
    logprobs_from_logits_v2.__wrapped__ = original
    functional.logprobs_from_logits_v2 = logprobs_from_logits_v2
