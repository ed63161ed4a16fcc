"""The fields verl's actor worker fetches from TransferQueue: what it reads, not every record of the batch.

verl 0.9.1's sync trainer hands the actor worker (``compute_log_prob``, ``update_actor``) a ``KVBatchMeta`` whose
field list is empty or lists every stored field, and the worker's TransferQueue bridge
(``verl/utils/transferqueue_utils.py``, ``tqbridge``) fetches all of them. Besides the tensors the worker reads
(token ids, positions, masks, log-probs, advantages), a batch holds per-sample Python records: the dataset row
(``raw_prompt``, ``extra_info``, ``reward_model``, ...) and the agent loop's output records (``metrics``,
``extra_fields``, ...), 18 of them in the quickstart. TransferQueue and tensordict rebuild every one of them for
every sample on each fetch, and again in each micro-batch's ``TensorDict.to``: about 4 600 objects per fetch at
32 × 8, a few tenths of a CPU second per FSDP phase on 2 cores (docs/cpu-step-profile.md, fifth round).

``for_workers(batch)`` names in the batch only its tensor fields and the records verl's workers read
(``WORKER_RECORDS``); keys, tags and ``extra_info`` are the batch's own. The worker then receives the same tensors,
so it computes the same log-probs and the same update. deltal's sync trainer applies it to the actor worker's
calls when ``trainer.worker_fields=read``. ``backend=cpu`` sets it (``deltal/config/backend/cpu.yaml``), where a
step's fetches cost most; the default ``all`` keeps verl's behaviour on GPUs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# Per-sample records (non-tensor fields) that verl 0.9.1's worker side reads: FSDPEngineWithLMHead.
# prepare_model_inputs takes multi_modal_inputs (verl/workers/engine/fsdp/transformer_impl.py). The losses
# (verl/workers/utils/losses.py) and the engine read tensors only; tests/verl_adapter/test_worker_fields_on_cpu.py
# checks that none of the records the quickstart stores is named there.
WORKER_RECORDS = frozenset({"multi_modal_inputs"})
FIELD_CHOICES = ("all", "read")


def fields_workers_read(field_schema: dict[str, dict[str, Any]]) -> list[str]:
    """The tensor fields of a TransferQueue field schema, plus the records in ``WORKER_RECORDS``, in schema order."""
    return [
        name for name, info in field_schema.items() if not info.get("is_non_tensor", False) or name in WORKER_RECORDS
    ]


def for_workers(batch: Any) -> Any:
    """``batch`` (a TransferQueue ``KVBatchMeta``) naming only the fields verl's workers read."""
    import transfer_queue as tq

    meta = tq.get_client().kv_retrieve_meta(keys=batch.keys, partition_id=batch.partition_id)
    return dataclasses.replace(batch, fields=fields_workers_read(meta.field_schema))


def check_choice(value: Any) -> str:
    """``value`` if it is one of ``FIELD_CHOICES``; a ValueError naming them otherwise."""
    if value not in FIELD_CHOICES:
        raise ValueError(
            f"trainer.worker_fields={value!r} must be one of {', '.join(FIELD_CHOICES)}: all (every stored field, "
            "verl's behaviour) or read (the fields verl's workers read)."
        )
    return value
