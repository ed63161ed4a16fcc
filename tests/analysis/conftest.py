"""Fixtures of the analysis tests: a log directory laid out like verl's file logger writes it."""

import json

import pytest
from analysis_fixtures import COUNTDOWN_RUNS, MATH_RUN, countdown_records, math_records, write_log


@pytest.fixture
def log_root(tmp_path):
    """A directory laid out like $VERL_FILE_LOGGER_ROOT with three runs and one validation-generations dump."""
    root = tmp_path / "logs"
    for run, evaluations in COUNTDOWN_RUNS.items():
        write_log(root / "deltal_countdown" / f"{run}.jsonl", countdown_records(evaluations))
    write_log(root / "deltal_math" / f"{MATH_RUN}.jsonl", math_records())
    # verl's validation_data_dir dump: JSONL too, but not a metric log; export must skip it.
    dump = root / "deltal_math" / "val_generations" / "50.jsonl"
    dump.parent.mkdir(parents=True)
    dump.write_text(json.dumps({"input": "q", "output": "a", "score": 1.0, "step": 50}) + "\n")
    return root
