"""compare's named experiments and task choice: a preset sets every flag's default while explicit flags win, every
preset is a valid experiment, an unknown preset or task stops with exit 2, and the task names the runs, the data
folder and the data source of the files it builds."""

import pytest

from deltal.cli import settings_from
from deltal.experiments import compare


def test_a_preset_sets_the_defaults_and_explicit_flags_win():
    args = compare.parse_arguments(["--preset", "evidence", "--out", "x", "--seeds", "7", "--lr", "1e-3"])
    settings = settings_from(args, compare.CompareSettings)
    assert settings.task == "countdown_trace_partial" and settings.warm_steps == 3000 and settings.steps == 40
    assert settings.methods == ("delta_l", "dr_grpo_norm", "dapo_norm", "grpo_norm")
    assert settings.seeds == (7,) and settings.lr == 1e-3
    assert settings_from(args, compare.CompareCommand).target == 0.3
    plain = settings_from(compare.parse_arguments(["--out", "x"]), compare.CompareSettings)
    assert plain == compare.CompareSettings()


@pytest.mark.parametrize("name", sorted(compare.PRESETS))
def test_every_preset_is_a_valid_experiment(name):
    settings = settings_from(compare.parse_arguments(["--preset", name, "--out", "x"]), compare.CompareSettings)
    compare.check_settings(settings)
    assert settings.task in compare.TASKS


@pytest.mark.parametrize("flags", [["--preset", "huge"], ["--task", "countdown"]])
def test_an_unknown_preset_or_task_exits_2(flags, capsys):
    with pytest.raises(SystemExit) as stopped:
        compare.parse_arguments(["--out", "x", *flags])
    assert stopped.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_the_task_names_the_runs_and_the_data_it_builds(tmp_path, monkeypatch):
    built = {}

    def fake_build(out, train_size, test_size, seed, reward):
        built.update(out=out, reward=reward)
        raise RuntimeError("stop after the data step")

    monkeypatch.setattr("deltal.data.countdown_trace.build", fake_build)
    settings = compare.CompareSettings(task="countdown_trace_full")
    with pytest.raises(RuntimeError, match="stop after the data step"):
        compare.prepare(settings, tmp_path)
    assert built["reward"] == "full_trace" and built["out"].name.startswith("countdown_trace_full-seed0")
    assert compare.run_name("countdown_trace_full", "delta_l", 3) == "countdown_trace_full__delta_l__tiny-qwen2__seed3"
