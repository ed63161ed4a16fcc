"""The actor worker fetches the fields it reads (``trainer.worker_fields=read``, set by ``backend=cpu``).

Properties: of a TransferQueue field schema, every tensor field and the records in ``WORKER_RECORDS`` are kept, in
order, and the other per-sample records are left out; deltal's sync trainer hands the narrowed batch to verl's
old-log-prob, ref and update calls only when asked; and verl 0.9.1's worker side names none of the records the
quickstart's batch holds besides those kept, so it cannot miss one that it reads (a missing field it indexed would
fail the e2e test, one read with a default would not: hence the source check).
"""

import re
from pathlib import Path

import pytest
import verl
from omegaconf import OmegaConf
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1 import PPOTrainerSync

from deltal.train import compose_config
from deltal.verl_adapter.trainer import DeltaLSyncTrainer
from deltal.verl_adapter.worker_fields import WORKER_RECORDS, check_choice, fields_workers_read

# The per-sample records in the quickstart's TransferQueue batch (verl's agent-loop output, AgentLoopOutput.as_dict,
# plus the dataset row; listed from a batch stored by the rollout of tests/cpu/test_agent_loop_on_cpu.py).
QUICKSTART_RECORDS = (
    "num_turns metrics extra_fields mm_processor_kwargs mm_processor_output session_id data_source prompt ability "
    "reward_model extra_info raw_prompt index tools_kwargs interaction_kwargs uid global_steps multi_modal_inputs"
).split()
# verl's worker side: the actor/ref worker, its FSDP engine, the losses and the TensorDict helpers they use.
VERL_WORKER_FILES = (
    "workers/engine_workers.py",
    "workers/engine/base.py",
    "workers/engine/utils.py",
    "workers/engine/fsdp/transformer_impl.py",
    "workers/utils/losses.py",
    "workers/utils/padding.py",
    "utils/tensordict_utils.py",
)
# Named in those files only as the key of the worker's *output* metrics (engine_workers.py _postprocess_output and
# train_mini_batch, engine/base.py, engine/utils.py postprocess_batch_func), never read from the input batch.
OUTPUT_KEYS = {"metrics"}


def test_tensor_fields_and_read_records_are_kept_in_order():
    schema = {
        "prompts": {"is_non_tensor": False},
        "raw_prompt": {"is_non_tensor": True},
        "input_ids": {},
        "multi_modal_inputs": {"is_non_tensor": True},
        "extra_info": {"is_non_tensor": True},
        "old_log_probs": {"is_non_tensor": False},
    }
    assert fields_workers_read(schema) == ["prompts", "input_ids", "multi_modal_inputs", "old_log_probs"]


def test_cpu_backend_reads_and_the_default_keeps_verls_behaviour():
    assert compose_config(["backend=cpu", "method=delta_l"]).trainer.worker_fields == "read"
    assert compose_config(["method=delta_l"]).trainer.worker_fields == "all"
    with pytest.raises(ValueError, match="all .* or read"):
        check_choice("tensors")


@pytest.mark.parametrize("choice", ["all", "read"])
def test_trainer_narrows_the_actor_calls_only_when_asked(monkeypatch, choice):
    batch = KVBatchMeta(keys=["a", "b"], tags=[{}, {}], partition_id="train", extra_info={"temperature": 1.0})
    narrowed = KVBatchMeta(keys=["a", "b"], tags=[{}, {}], partition_id="train", fields=["input_ids"])
    monkeypatch.setattr("deltal.verl_adapter.trainer.for_workers", lambda meta: narrowed)
    handed = {}
    calls = ("_compute_old_log_prob", "_compute_ref_log_prob", "_update_actor")
    for method in calls:
        monkeypatch.setattr(
            PPOTrainerSync,
            method,
            lambda self, meta, metrics, name=method: handed.update({name: meta}),
        )
    monkeypatch.setattr(PPOTrainerSync, "__init__", lambda self, config: None)
    config = OmegaConf.create({"trainer": {"worker_fields": choice, "v1": {"trainer_mode": "deltal_sync"}}})
    trainer = DeltaLSyncTrainer(config)
    for method in calls:
        getattr(trainer, method)(batch, {})
    assert handed == {method: narrowed if choice == "read" else batch for method in calls}


def test_verls_worker_side_reads_no_record_it_is_not_handed():
    root = Path(verl.__file__).parent
    source = "\n".join((root / name).read_text() for name in VERL_WORKER_FILES)
    named = {record for record in QUICKSTART_RECORDS if re.search(rf"[\"']{record}[\"']", source)}
    assert named - OUTPUT_KEYS == set(WORKER_RECORDS)
