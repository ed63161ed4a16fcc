"""``python -m deltal.experiments.compare`` end to end: 2 methods x 1 seed x 2 steps through the real pipeline
(``deltal.train backend=cpu``), resumable (a finished run is skipped, an interrupted one restarts from scratch), then
one tidy table, a summary with one row per method and every PNG; bad arguments exit 2 with a message.

The delta_l run is the suite's shared one (``compare_delta_l_run`` in tests/conftest.py, also checked by tests/e2e);
this test adds the second method."""

import json

import pandas as pd
import pytest

from deltal.experiments.compare import main


def test_unknown_method_exits_2_naming_the_known_ones(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--methods", "delta_l,nope"]) == 2
    assert "unknown methods ['nope']" in capsys.readouterr().err


def test_plots_only_without_finished_runs_exits_2(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--plots-only"]) == 2
    assert "no finished runs" in capsys.readouterr().err


@pytest.mark.slow
def test_two_methods_train_resume_and_report(compare_delta_l_run, capsys):
    experiment = compare_delta_l_run  # `--methods delta_l` has run
    out = experiment.out
    first = out / "runs" / "countdown_trace__delta_l__tiny-qwen2__seed0"
    finished_at = (first / "done.json").stat().st_mtime_ns
    # A run directory without done.json is an interrupted run: it is wiped and trained again.
    interrupted = out / "runs" / "countdown_trace__dapo_norm__tiny-qwen2__seed0"
    interrupted.mkdir(parents=True)
    (interrupted / "stale.txt").write_text("left by a killed run")

    assert main(experiment.args("--methods", "delta_l,dapo_norm")) == 0
    assert (first / "done.json").stat().st_mtime_ns == finished_at, "the finished run must be skipped"
    assert not (interrupted / "stale.txt").exists() and (interrupted / "done.json").exists()
    assert json.loads((interrupted / "done.json").read_text())["settings"]["steps"] == 2

    tidy = pd.read_csv(out / "runs.csv")
    assert set(tidy["method"]) == {"delta_l", "dapo_norm"}
    assert {"critic/score/mean", "response_length/mean", "val-core/countdown_trace/acc/mean@1"} <= set(tidy["metric"])
    assert tidy.loc[tidy["metric"] == "critic/score/mean", "step"].max() == 2
    summary = (out / "summary.md").read_text().splitlines()
    assert len(summary) == 2 + 2 and "DAPO Norm" in summary[2] and "ΔL Norm" in summary[3]  # paper order
    figures = out / "figures"
    for name in ("heldout_accuracy", "batch_reward", "response_length", "adv_weight_spread", "variance_ratio"):
        assert (figures / f"{name}.png").stat().st_size > 0

    # Figures come back from the finished runs alone.
    for png in figures.glob("*.png"):
        png.unlink()
    assert main(["--out", str(out), "--plots-only"]) == 0
    assert len(list(figures.glob("*.png"))) == 5
    assert "DAPO Norm" in capsys.readouterr().out

    # Other settings on the same folder would mix experiments: refused.
    assert main(experiment.args("--methods", "delta_l", "--lr", "1e-3")) == 2
