"""The stability frontier: its grid (learning rates, one more batch size), a crashed run recorded as diverged
without stopping the grid and skipped on resume, the diverged / collapsed verdicts per run, and the table and figure
of plateau accuracy against the learning rate, built from logs laid out as verl's file logger writes them."""

import json
import math

import pandas as pd
import pytest

from deltal.experiments import compare, frontier

VAL = "val-core/countdown_trace_full/acc/mean@1"


def _write_run(runs_dir, method, seed, accuracy, grad_norm=0.1, marker=compare.DONE_NAME):
    name = compare.run_name("countdown_trace_full", method, seed)
    run = runs_dir / name
    run.mkdir(parents=True)
    records = [{"step": step, "data": {VAL: value}} for step, value in zip((0, 5, 10, 15), accuracy, strict=True)]
    records += [{"step": step, "data": {"actor/grad_norm": grad_norm, "actor/pg_loss": 0.0}} for step in (1, 2)]
    (run / f"{name}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    if marker is not None:  # None: a run still going (or interrupted)
        (run / marker).write_text("{}")


@pytest.fixture
def grid_dir(tmp_path):
    out = tmp_path / "frontier"
    grid = frontier.FrontierGrid(lrs=(1e-4, 1e-3), alt_prompts=4, alt_lr=1e-4)
    settings = compare.CompareSettings(task="countdown_trace_full", methods=("delta_l", "dapo_norm"), prompts=8)
    frontier.save_grid(out, grid, settings)
    for seed in (0, 1):
        _write_run(out / "prompts8-lr0.0001" / "runs", "delta_l", seed, [0.1, 0.2, 0.3, 0.3 + 0.02 * seed])
        _write_run(out / "prompts8-lr0.0001" / "runs", "dapo_norm", seed, [0.1, 0.2, 0.2, 0.2])
        _write_run(out / "prompts8-lr0.001" / "runs", "delta_l", seed, [0.1, 0.3, 0.3, 0.3])
        # DAPO Norm at the large lr: one run logs a non-finite gradient norm, the other ends below its start.
        if seed == 0:
            _write_run(out / "prompts8-lr0.001" / "runs", "dapo_norm", seed, [0.1, 0.1, 0.0, 0.0], math.nan)
        else:
            _write_run(out / "prompts8-lr0.001" / "runs", "dapo_norm", seed, [0.1, 0.05, 0.0, 0.05])
        marker = compare.DONE_NAME if seed == 0 else None
        _write_run(out / "prompts4-lr0.0001" / "runs", "delta_l", seed, [0.1, 0.1, 0.2, 0.2], marker=marker)
    return out


def test_the_grid_is_the_learning_rates_then_the_second_batch_size():
    grid = frontier.FrontierGrid(lrs=(1e-4, 4e-4), alt_prompts=4, alt_lr=4e-4)
    assert [cell.name for cell in frontier.cells(grid, 16)] == [
        "prompts16-lr0.0001",
        "prompts16-lr0.0004",
        "prompts4-lr0.0004",
    ]


@pytest.mark.parametrize(
    "grid, message",
    [
        (frontier.FrontierGrid(lrs=()), "--lrs"),
        (frontier.FrontierGrid(lrs=(1e-4, 1e-4)), "--lrs"),
        (frontier.FrontierGrid(lrs=(-1e-4,)), "--lrs"),
        (frontier.FrontierGrid(alt_prompts=4), "--alt-prompts and --alt-lr go together"),
        (frontier.FrontierGrid(alt_prompts=0, alt_lr=1e-4), "--alt-prompts must be >= 1"),
    ],
)
def test_a_grid_no_run_can_use_is_refused_naming_the_flag(grid, message):
    with pytest.raises(ValueError, match=message):
        frontier.check_grid(grid, compare.CompareSettings())


def test_a_crash_is_recorded_as_diverged_and_skipped_on_resume(tmp_path, monkeypatch):
    calls = []

    def fake_run_one(settings, assets, method, seed, runs_dir):
        calls.append((settings.lr, settings.prompts, method, seed))
        run_dir = runs_dir / compare.run_name(settings.task, method, seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        if settings.lr > 1e-3:
            (run_dir / "train.log").write_text("sampling failed: probability tensor contains nan\n")
            raise compare.RunFailed(f"{run_dir.name} exited with status 1")
        (run_dir / compare.DONE_NAME).write_text("{}")
        return True

    monkeypatch.setattr(compare, "prepare", lambda settings, cache: None)
    monkeypatch.setattr(compare, "run_one", fake_run_one)
    grid = frontier.FrontierGrid(lrs=(1e-4, 1e-2))
    settings = compare.CompareSettings(methods=("delta_l",), seeds=(0,), prompts=8)
    frontier.run_grid(grid, settings, tmp_path, tmp_path / "cache")
    assert calls == [(1e-4, 8, "delta_l", 0), (1e-2, 8, "delta_l", 0)]
    run_dir = tmp_path / "prompts8-lr0.01" / "runs" / compare.run_name("countdown_trace", "delta_l", 0)
    failed = json.loads((run_dir / frontier.FAILED_NAME).read_text())
    assert "status 1" in failed["error"] and "probability tensor contains nan" in failed["log_tail"][-1]
    calls.clear()
    frontier.run_grid(grid, settings, tmp_path, tmp_path / "cache")  # resume: the diverged run is not retried
    assert calls == [(1e-4, 8, "delta_l", 0)]


def test_each_run_is_judged_diverged_or_collapsed_from_its_own_log(grid_dir):
    runs = {compare.run_name("countdown_trace_full", m, s) for m in ("delta_l", "dapo_norm") for s in (0, 1)}
    grid_cells = frontier.cells(frontier.FrontierGrid(lrs=(1e-3,)), 8)
    table = frontier.frontier_table(grid_dir, grid_cells, plateau_evals=2, runs=runs)
    by_method = {row.method: row for row in table.itertuples(index=False)}
    assert (by_method["dapo_norm"].diverged, by_method["dapo_norm"].collapsed) == (1, 1)
    assert (by_method["delta_l"].diverged, by_method["delta_l"].collapsed) == (0, 0)
    assert by_method["delta_l"].plateau_mean == pytest.approx(0.3)


def test_the_report_writes_the_table_and_the_figure(grid_dir):
    text = frontier.report(grid_dir, plateau_evals=2)
    lines = text.splitlines()
    assert lines[0] == "| method | P=8, lr=0.0001 | P=8, lr=0.001 | P=4, lr=0.0001 |"
    dapo = next(line for line in lines if line.startswith("| DAPO Norm"))
    assert "0.200 ± 0.000" in dapo and "(1 diverged, 1 collapsed of 2)" in dapo and dapo.endswith("| – |")
    delta = next(line for line in lines if line.startswith("| ΔL Norm"))
    assert "0.305 ± 0.005" in delta
    # The unfinished run at P=4 (neither done nor failed) is left out: one run, no spread.
    assert delta.endswith("| 0.200 ± 0.000 |")
    table = pd.read_csv(grid_dir / "frontier.csv")
    assert set(table["lr"]) == {1e-4, 1e-3} and set(table["prompts"]) == {4, 8}
    assert (grid_dir / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_a_later_call_may_add_rates_methods_and_seeds_and_the_report_keeps_to_them(grid_dir):
    # A larger comparison shares the base cell: its extra method is not part of the grid's table. The base --lr
    # does not matter (every cell sets its own).
    _write_run(grid_dir / "prompts8-lr0.0001" / "runs", "grpo_norm", 0, [0.1, 0.2, 0.2, 0.2])
    assert "GRPO Norm" not in frontier.report(grid_dir, plateau_evals=2)
    settings = compare.CompareSettings(
        task="countdown_trace_full", methods=("grpo_norm",), seeds=(0,), prompts=8, lr=3e-4
    )
    record = frontier.save_grid(grid_dir, frontier.FrontierGrid(lrs=(4e-3,)), settings)
    assert record["grid"] == {"lrs": [1e-4, 1e-3, 4e-3], "alt_prompts": 4, "alt_lr": 1e-4}
    assert record["settings"]["methods"] == ["delta_l", "dapo_norm", "grpo_norm"]
    assert record["settings"]["seeds"] == [0, 1, 2]  # the fixture's default seeds, then none new
    assert "GRPO Norm" in frontier.report(grid_dir, plateau_evals=2)
    with pytest.raises(ValueError, match="other settings"):
        frontier.save_grid(grid_dir, frontier.FrontierGrid(alt_prompts=2, alt_lr=1e-4), settings)


def test_a_resume_with_other_settings_stops_and_plots_only_needs_a_grid(grid_dir, tmp_path):
    with pytest.raises(ValueError, match="other settings"):
        frontier.save_grid(grid_dir, frontier.FrontierGrid(lrs=(1e-4,)), compare.CompareSettings(prompts=8))
    assert frontier.main(["--out", str(tmp_path / "empty"), "--plots-only"]) == 2


def test_the_figure_ticks_each_learning_rate_of_the_grid_and_nothing_between(grid_dir):
    frontier.report(grid_dir, plateau_evals=2)
    figure = frontier.frontier_figure(pd.read_csv(grid_dir / "frontier.csv"), base_prompts=8)
    axis = figure.axes[0].xaxis
    assert list(axis.get_majorticklocs()) == pytest.approx([1e-4, 1e-3])
    assert [label.get_text() for label in axis.get_majorticklabels()] == ["0.0001", "0.001"]
    # The log axis's default minor ticks (2e-4, 3e-4, ...) are what overlapped.
    assert list(axis.get_minorticklocs()) == []
