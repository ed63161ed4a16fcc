"""The training curves plot the estimator's variance telemetry when a run logged it: one PNG per model for the running
method's CV ratio and scale ratio, and one for the baseline aggregators' CV ratios on the same batches; runs without
telemetry get none of them (older logs keep working)."""

import pandas as pd
from analysis_fixtures import COUNTDOWN_RUNS, countdown_records

from deltal.analysis.plots import plot_curves

TELEMETRY = {
    "deltal/variance/cv_ratio_to_optimal": 1.0,
    "deltal/bias/scale_ratio": 1.0,
    "deltal/variance/cv_ratio/grpo_norm": 1.0,
    "deltal/variance/cv_ratio/dapo_norm": 1.4,
    "deltal/variance/cv_ratio/dr_grpo_norm": 1.4,
}


def tidy_frame(with_telemetry: bool) -> pd.DataFrame:
    rows = []
    for run, evaluations in COUNTDOWN_RUNS.items():
        task, method, model, _ = run.split("__")
        for step, data in countdown_records(evaluations):
            metrics = dict(data, **TELEMETRY) if with_telemetry and step > 0 else data
            for metric, value in metrics.items():
                if isinstance(value, float | int):
                    rows.append(
                        {
                            "run": run,
                            "task": task,
                            "method": method,
                            "model": model,
                            "step": step,
                            "metric": metric,
                            "value": float(value),
                        }
                    )
    return pd.DataFrame(rows)


def test_curves_plot_the_telemetry_when_logged(tmp_path):
    written = plot_curves(tidy_frame(with_telemetry=True), "countdown", tmp_path)
    names = {path.name for path in written}
    for kind in ("cv_ratio_to_optimal", "scale_ratio", "cv_ratio_by_aggregator"):
        assert f"countdown__qwen2.5-3b__{kind}.png" in names
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in written)


def test_runs_without_telemetry_get_no_telemetry_plots(tmp_path):
    names = {path.name for path in plot_curves(tidy_frame(with_telemetry=False), "countdown", tmp_path)}
    assert not any("ratio" in name for name in names)
