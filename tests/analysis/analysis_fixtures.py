"""Hand-made verl file-logger logs with known answers, shared by the analysis tests (imported by conftest.py).

Each log is written exactly as verl 0.9.1's FileLogger does: one ``{"step": int, "data": {...}}`` JSON object per
line under ``<root>/<project>/<experiment>.jsonl``. Values are chosen so every expected metric is computable by hand.
"""

import json

# CountDown runs: step -> (Avg@8, Pass@8) of the core variable `acc`.
COUNTDOWN_RUNS = {
    "countdown__delta_l__qwen2.5-3b__seed1": {0: (0.0, 0.2), 50: (1.0, 1.0), 100: (0.0, 0.5), 150: (1.0, 0.9)},
    "countdown__grpo_norm__qwen2.5-3b__seed1": {0: (0.1, 0.3), 50: (0.6, 0.8), 100: (0.4, 0.7), 150: (0.5, 0.95)},
}
# Math run: step -> {dataset: Avg@8}. Step 100 has the best weighted average even though AIME peaks at step 50.
MATH_RUN = "math__delta_l__qwen2.5-7b__seed0"
MATH_SCORES = {
    0: {"minerva": 0.1, "aime2024": 0.0, "math500": 0.5, "amc": 0.2},
    50: {"minerva": 0.2, "aime2024": 0.9, "math500": 0.6, "amc": 0.3},
    100: {"minerva": 0.2, "aime2024": 0.1, "math500": 0.7, "amc": 0.4},
}


def write_log(path, records):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for step, data in records:
            handle.write(json.dumps({"step": step, "data": data}) + "\n")
    return path


def countdown_records(evaluations):
    """Validation at each evaluation step, training metrics on the steps in between (as verl logs them)."""
    records = []
    for step, (avg, best) in sorted(evaluations.items()):
        val = {
            "val-core/countdown/acc/mean@8": avg,
            "val-core/countdown/acc/best@8/mean": best,
            "val-core/countdown/acc/best@8/std": 0.01,
            # Distractors verl also logs: another variable and smaller n, which must not be read.
            "val-aux/countdown/reward/mean@8": avg / 2 + 0.3,
            "val-aux/countdown/acc/best@4/mean": best / 2,
            "val-aux/countdown/acc/std@8": 0.3,
        }
        if step > 0:
            val |= {"response_length/mean": 100.0 + step, "actor/entropy": 0.5 - step / 1000, "training/epoch": 0}
        records.append((step, val))
        if step > 0:
            records.append((step - 25, {"response_length/mean": 90.0 + step, "actor/entropy": 0.4, "note": "text"}))
    return sorted(records, key=lambda record: record[0])


def math_records():
    records = []
    for step, per_dataset in MATH_SCORES.items():
        data = {}
        for dataset, avg in per_dataset.items():
            data[f"val-core/{dataset}/reward/mean@8"] = avg
            data[f"val-core/{dataset}/reward/best@8/mean"] = min(1.0, avg + 0.2)
        if step > 0:
            data |= {"response_length/mean": 300.0 + step, "actor/entropy": 0.3}
        records.append((step, data))
    return records
