"""Compare methods over seeds on a CountDown trace task with the real pipeline, then table and plot them.

    python -m deltal.experiments.compare --methods delta_l,dapo_norm,dr_grpo_norm --seeds 0,1,2 --steps 40 \\
        --out .deltal/compare/trace
    python -m deltal.experiments.compare --out .deltal/compare/trace --plots-only     # figures from finished runs

What it does, in order:

1. builds (or reuses, cached under ``--cache``) the shared starting point: the trace dataset of ``--task``
   (``deltal.data.countdown_trace``: ``countdown_trace`` checks the answer and the last trace line,
   ``countdown_trace_full`` every line, ``countdown_trace_partial`` every line with partial credit, so that lengths
   persist under RL), the tiny tokenizer and model with a
   512-token context and its supervised warm start (``deltal.cpu.warmstart_trace``). Every run starts from the
   same warm-started weights;
2. runs ``python -m deltal.train backend=cpu method=<m>`` once per (method, seed), one after another, with the same
   lr, batch, steps and validation for every method; the seed sets the data order (``data.seed``) and the rollout's
   sampling (``actor_rollout_ref.rollout.seed``). Rewards come from ``deltal.rewards.countdown_trace`` through
   ``deltal.verl_adapter.reward_manager.StrictEndRewardManager`` (a truncated response scores 0);
3. exports every finished run through ``deltal.analysis`` into ``<out>/runs.csv`` (tidy: run, task, method, model,
   step, metric, value), writes the per-method table (``<out>/summary.md``, also printed) and the figures
   (``<out>/figures/*.png``, see ``deltal.analysis.comparison``).

Resumable: a run directory with ``done.json`` is finished and skipped; any other run directory is an interrupted run
and is deleted and started again from step 0 (verl's own checkpoint resume is not used, so a restarted run is
exactly a fresh one). ``--plots-only`` skips steps 1-2. Extra hydra overrides for every run go after ``--``.
Exit status 2 for bad arguments, 1 when a run fails (its log is ``<out>/runs/<run>/train.log``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from deltal.cli import add_options, option, settings_from
from deltal.data.countdown_trace import DATA_SOURCES

# The tasks compare can run: the data sources of the trace builder's rewards.
TASKS = tuple(DATA_SOURCES.values())

logger = logging.getLogger(__name__)

MODEL = "tiny-qwen2"
DONE_NAME = "done.json"
EXIT_USAGE = 2
EXIT_RUN_FAILED = 1


@dataclass(frozen=True)
class CompareSettings:
    """Everything that defines an experiment; identical for every method (only ``method`` and ``seed`` vary)."""

    task: str = field(default="countdown_trace", metadata=option(choices=TASKS))
    """Task: countdown_trace (answer and last line checked), countdown_trace_full (every line checked) or
    countdown_trace_partial (every line, with partial credit for the part of the search written correctly)."""
    methods: tuple[str, ...] = ("delta_l", "dapo_norm", "dr_grpo_norm")
    """Methods compared (deltal method names)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """RL seeds: data order and rollout sampling."""
    steps: int = 40
    """Training steps per run."""
    prompts: int = 16
    """Prompts per step (data.train_batch_size); also the PPO mini-batch, so each step is one on-policy update."""
    n: int = 8
    """Responses per prompt (GRPO group size)."""
    lr: float = 2e-4
    """Actor learning rate (AdamW, no weight decay)."""
    max_response_length: int = 448
    """Token budget M of a response; also ΔL's and Dr. GRPO's constant denominator."""
    test_freq: int = 5
    """Validate (greedy, on the held-out split) every this many steps, and before training."""
    val_size: int = 128
    """Held-out problems used for validation (the first ones of the test split)."""
    train_size: int = 4096
    """Training problems generated."""
    test_size: int = 256
    """Held-out problems generated (excluded from the warm start)."""
    data_seed: int = 0
    """Seed of the dataset, tokenizer, model init and warm start (shared by every run)."""
    warm_steps: int = 500
    """Supervised warm-start steps (batch 32)."""
    warm_pool: int = 4000
    """Distinct problems the warm start trains on."""
    extra_overrides: tuple[str, ...] = field(
        default_factory=tuple, metadata=option(positional=True, metavar="overrides")
    )
    """Hydra overrides appended to every run's command (after --)."""


def run_name(task: str, method: str, seed: int) -> str:
    """``{task}__{method}__{model}__seed{seed}``, the naming deltal.analysis parses."""
    return f"{task}__{method}__{MODEL}__seed{seed}"


@dataclass(frozen=True)
class SharedAssets:
    """Paths every run reads."""

    train_file: Path
    val_file: Path
    model_dir: Path


def prepare(settings: CompareSettings, cache: Path) -> SharedAssets:
    """Build (or reuse) the dataset, the tiny model and its warm start, and the validation subset."""
    import pyarrow.parquet as pq

    from deltal.cpu.warmstart import read_instances
    from deltal.cpu.warmstart_trace import TraceWarmStartSettings, build_trace_assets, warm_start_trace
    from deltal.data import countdown_trace

    seed = settings.data_seed
    data_dir = cache / "data" / f"{settings.task}-seed{seed}-train{settings.train_size}-test{settings.test_size}"
    if not (data_dir / "test.parquet").exists():
        reward = {source: name for name, source in DATA_SOURCES.items()}[settings.task]
        countdown_trace.build(data_dir, settings.train_size, settings.test_size, seed=seed, reward=reward)
    val_file = data_dir / f"val{settings.val_size}.parquet"
    if not val_file.exists():
        table = pq.read_table(data_dir / "test.parquet")
        if settings.val_size > table.num_rows:
            raise ValueError(f"--val-size {settings.val_size} exceeds --test-size {table.num_rows}; lower it")
        pq.write_table(table.slice(0, settings.val_size), val_file)
    base = build_trace_assets(cache / "assets" / f"tiny-qwen2-trace-seed{seed}", seed=seed)
    warm = warm_start_trace(
        base,
        cache / "assets" / f"tiny-qwen2-trace-seed{seed}-warm{settings.warm_steps}",
        TraceWarmStartSettings(
            steps=settings.warm_steps,
            seed=seed,
            problem_pool=settings.warm_pool,
            max_response_length=settings.max_response_length,
        ),
        exclude=read_instances(data_dir / "test.parquet"),
    )
    return SharedAssets(train_file=data_dir / "train.parquet", val_file=val_file, model_dir=warm)


def train_command(
    settings: CompareSettings, assets: SharedAssets, method: str, seed: int, run_dir: Path, ray_tmp: str
) -> list[str]:
    """The ``python -m deltal.train`` command of one run; only ``method`` and ``seed`` differ between runs."""
    from deltal.verl_adapter.reward_manager import OVERRIDES as STRICT_END_REWARD_MANAGER

    micro = settings.prompts * settings.n
    return [
        sys.executable,
        "-m",
        "deltal.train",
        "backend=cpu",
        f"method={method}",
        f"data.train_files={assets.train_file}",
        f"data.val_files={assets.val_file}",
        f"data.train_batch_size={settings.prompts}",
        f"data.val_batch_size={settings.val_size}",
        "data.max_prompt_length=32",
        f"data.max_response_length={settings.max_response_length}",
        f"data.seed={seed}",
        f"actor_rollout_ref.model.path={assets.model_dir}",
        f"actor_rollout_ref.rollout.n={settings.n}",
        f"actor_rollout_ref.rollout.seed={seed}",
        "actor_rollout_ref.rollout.temperature=1.0",
        "actor_rollout_ref.rollout.top_k=-1",
        "actor_rollout_ref.rollout.top_p=1.0",
        f"actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu={micro}",
        f"actor_rollout_ref.actor.optim.lr={settings.lr}",
        "actor_rollout_ref.actor.optim.weight_decay=0.0",
        f"actor_rollout_ref.actor.ppo_mini_batch_size={settings.prompts}",
        f"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu={micro}",
        "actor_rollout_ref.actor.ppo_epochs=1",
        "actor_rollout_ref.actor.entropy_coeff=0",
        "actor_rollout_ref.actor.use_kl_loss=false",
        "algorithm.use_kl_in_reward=false",
        "reward.custom_reward_function.path=pkg://deltal.rewards",
        "reward.custom_reward_function.name=compute_score",
        *STRICT_END_REWARD_MANAGER,
        "trainer.logger=[console,file]",
        "trainer.project_name=deltal_compare",
        f"trainer.experiment_name={run_name(settings.task, method, seed)}",
        f"trainer.total_training_steps={settings.steps}",
        "trainer.total_epochs=1000",
        "trainer.val_before_train=true",
        f"trainer.test_freq={settings.test_freq}",
        "trainer.save_freq=-1",
        "trainer.resume_mode=disable",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        f"+ray_kwargs.ray_init._temp_dir={ray_tmp}",
        *settings.extra_overrides,
    ]


class RunFailed(RuntimeError):
    """A training run exited with an error; the message names its log."""


def shared_settings(settings: dict) -> dict:
    """The settings a finished run must share with the current call (the method and seed lists may grow), in their
    JSON form so tuples and lists compare equal."""
    return json.loads(json.dumps({key: value for key, value in settings.items() if key not in ("methods", "seeds")}))


def run_one(
    settings: CompareSettings,
    assets: SharedAssets,
    method: str,
    seed: int,
    runs_dir: Path,
    keep_checkpoints: bool = False,
) -> bool:
    """Train one (method, seed) unless it already finished; return True when it ran now.

    verl's checkpoints are deleted when the run ends unless ``keep_checkpoints`` (the runs save none unless an
    override asks, e.g. ``trainer.save_freq=20 actor_rollout_ref.actor.checkpoint.save_contents=[hf_model]``).
    """
    name = run_name(settings.task, method, seed)
    run_dir = runs_dir / name
    if (run_dir / DONE_NAME).exists():
        finished = json.loads((run_dir / DONE_NAME).read_text())["settings"]
        if shared_settings(finished) != shared_settings(asdict(settings)):
            raise ValueError(
                f"{name} in {runs_dir} finished with other settings ({shared_settings(finished)}); pass the same "
                "settings to resume, or a new --out to start another experiment"
            )
        logger.info("%s finished before; skipping", name)
        return False
    if run_dir.exists():
        logger.info("%s was interrupted; restarting it from step 0", name)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    # Ray's socket paths must stay under 108 characters, so its temp dir lives in the system temp folder.
    ray_tmp = tempfile.mkdtemp(prefix="dl-cmp-")
    env = {
        **os.environ,
        "VERL_PLATFORM": "cpu",
        "RAY_AUTH_MODE": "disabled",
        "HF_HUB_OFFLINE": "1",
        "VERL_FILE_LOGGER_PATH": str(run_dir / f"{name}.jsonl"),
    }
    started = time.monotonic()
    try:
        with (run_dir / "train.log").open("w") as log:
            result = subprocess.run(
                train_command(settings, assets, method, seed, run_dir, ray_tmp),
                env=env,
                cwd=run_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    if result.returncode != 0:
        raise RunFailed(f"{name} exited with status {result.returncode}; see {run_dir / 'train.log'}")
    if not keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    record = {"method": method, "seed": seed, "wall_s": time.monotonic() - started, "settings": asdict(settings)}
    (run_dir / DONE_NAME).write_text(json.dumps(record, indent=2) + "\n")
    return True


def run_all(settings: CompareSettings, out: Path, cache: Path, keep_checkpoints: bool = False) -> None:
    """Prepare the shared assets, then train every (method, seed) not finished yet, with a progress bar over runs."""
    assets = prepare(settings, cache)
    runs = [(method, seed) for seed in settings.seeds for method in settings.methods]
    with tqdm(runs, desc="compare runs", unit="run") as progress:
        for method, seed in progress:
            progress.set_postfix_str(run_name(settings.task, method, seed))
            run_one(settings, assets, method, seed, out / "runs", keep_checkpoints)


def finished_logs(out: Path) -> list[Path]:
    """Metric logs of the finished runs under ``out/runs``."""
    runs_dir = out / "runs"
    done = sorted(path.parent for path in runs_dir.glob(f"*/{DONE_NAME}")) if runs_dir.is_dir() else []
    logs = [run / f"{run.name}.jsonl" for run in done if (run / f"{run.name}.jsonl").exists()]
    if not logs:
        raise FileNotFoundError(f"no finished runs under {runs_dir}; train first (drop --plots-only)")
    return logs


def report(out: Path, target: float) -> str:
    """Export finished runs to ``runs.csv``, write ``summary.md`` and ``figures/*.png``; return the summary text."""
    from deltal.analysis.comparison import plot_comparison, summarise, summary_frame, to_markdown
    from deltal.analysis.logs import load_file_logs

    frame = load_file_logs(finished_logs(out))
    frame.to_csv(out / "runs.csv", index=False)
    table = to_markdown(summary_frame(summarise(frame, target), target))
    (out / "summary.md").write_text(table)
    plot_comparison(frame, out / "figures", "/".join(sorted(frame["task"].unique())))
    return table


# Named experiments: values for the flags below (explicit flags still win). ``evidence`` is the comparison of
# docs/experiments.md (2026-12-03): the partial-credit trace task, whose lengths persist under RL, four methods
# and four seeds; ``evidence-small`` is the same comparison cut down to be watched on 2 cores (a 1000-step warm start,
# two methods, one seed, 12 steps, 64 held-out problems; 24 minutes end to end from an empty cache on 2 cores, measured
# in docs/experiments.md), so it is a demonstration of the tool and of the lengths, not evidence about accuracy.
PRESETS: dict[str, dict[str, object]] = {
    "evidence": {
        "task": "countdown_trace_partial",
        "methods": ("delta_l", "dr_grpo_norm", "dapo_norm", "grpo_norm"),
        "seeds": (0, 1, 2, 3),
        "warm_steps": 3000,
        "steps": 40,
        "prompts": 8,
        "n": 8,
        "lr": 2e-4,
        "max_response_length": 448,
        "test_freq": 5,
        "val_size": 128,
        "target": 0.3,
    },
    "evidence-small": {
        "task": "countdown_trace_partial",
        "methods": ("delta_l", "dr_grpo_norm"),
        "seeds": (0,),
        "warm_steps": 1000,
        "steps": 12,
        "prompts": 8,
        "n": 8,
        "lr": 2e-4,
        "max_response_length": 448,
        "test_freq": 4,
        "val_size": 64,
        "target": 0.2,
    },
}


@dataclass(frozen=True, kw_only=True)
class CompareCommand:
    """Where an experiment is written and how it is reported (the experiment itself is CompareSettings)."""

    out: Path
    """Experiment folder: runs/, runs.csv, summary.md, figures/."""
    cache: Path = Path(".deltal")
    """Where shared data and models are cached."""
    target: float = 0.3
    """Held-out accuracy for 'steps to target'."""
    plots_only: bool = False
    """Only export, table and plot the finished runs."""
    keep_checkpoints: bool = False
    """Keep the checkpoints a run saved (overrides after -- ask for them), e.g. for the variance lab."""
    preset: str | None = field(default=None, metadata=option(choices=tuple(PRESETS)))
    """A named experiment: sets every other flag's default (flags given explicitly still win)."""


def build_parser() -> argparse.ArgumentParser:
    """One flag per field of CompareCommand and CompareSettings, helped by its docstring."""
    parser = argparse.ArgumentParser(prog="python -m deltal.experiments.compare", description=__doc__.splitlines()[0])
    return add_options(add_options(parser, CompareCommand), CompareSettings)


def check_settings(settings: CompareSettings) -> None:
    """Raise ValueError naming the fix for settings no run can use."""
    from deltal.verl_adapter.methods import METHODS

    unknown = [method for method in settings.methods if method not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {sorted(METHODS)}")
    if len(set(settings.methods)) != len(settings.methods) or len(set(settings.seeds)) != len(settings.seeds):
        raise ValueError("--methods and --seeds must not repeat a value")
    positive = (
        "steps",
        "prompts",
        "n",
        "max_response_length",
        "test_freq",
        "val_size",
        "train_size",
        "test_size",
        "warm_steps",
        "warm_pool",
    )
    bad = [name for name in positive if getattr(settings, name) < 1]
    if bad or settings.lr <= 0:
        raise ValueError(f"--{', --'.join(bad) or 'lr'} must be positive")
    if settings.n < 2:
        raise ValueError("--n must be >= 2: GRPO advantages need at least two responses per prompt")


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; with ``--preset``, parse again with the preset's values as the defaults."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.preset is not None:
        parser.set_defaults(**PRESETS[args.preset])
        args = parser.parse_args(argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    command = settings_from(args, CompareCommand)
    settings = settings_from(args, CompareSettings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_settings(settings)
        out = command.out.resolve()
        if not command.plots_only:
            out.mkdir(parents=True, exist_ok=True)
            run_all(settings, out, command.cache.resolve(), command.keep_checkpoints)
        table = report(out, command.target)
    except RunFailed as err:
        print(f"compare: {err}", file=sys.stderr)
        return EXIT_RUN_FAILED
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"compare: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(table, end="")
    print(f"compare: wrote {out / 'runs.csv'}, {out / 'summary.md'} and {out / 'figures'}/*.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
