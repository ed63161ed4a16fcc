"""Every paper launch script runs the experiment its name describes, and its full config validates against verl.

Each script is run once with ``DELTAL_PYTHON`` pointing at a shim that records the ``deltal.train`` command line;
the recorded override lists are then composed and validated in this one process (verl's real ``ppo_trainer``
config, deltal's resolver, verl's own checks), and two scripts run for real with ``DRY_RUN=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from recording_python import RECORD_VARIABLE, recorded_train_command, write_recording_python

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPTS = REPO / "train_scripts"
DAPO_SCRIPTS = REPO / "recipe" / "dapo"
NOT_PAPER_RUNS = {"common.sh", "quickstart-cpu.sh"}

PAPER_METHODS = {
    # script slug -> (method preset, α or None)
    "grpo-norm": ("grpo_norm", None),
    "dapo-norm": ("dapo_norm", None),
    "dr-grpo-norm": ("dr_grpo_norm", None),
    "dr-grpo": ("dr_grpo", None),
    "delta-l-norm-alpha-1": ("delta_l", 1.0),
    "delta-l-norm-alpha-0.75": ("delta_l", 0.75),
    "delta-l-norm-alpha-0.5": ("delta_l", 0.5),
}
PAPER_MODELS = {
    # script slug -> (hub id, max response length, CountDown steps, Math epochs), paper Appendix A.2
    "3b-3072": ("Qwen/Qwen2.5-3B", 3072, 1000, 3),
    "7b-3072": ("Qwen/Qwen2.5-7B", 3072, 500, 1),
    "3b-8192": ("Qwen/Qwen2.5-3B", 8192, 1000, 2),
}
# The reference repository's run scripts (its README), which must exist under exactly these names and reproduce
# its settings (train_scripts/README.md, naming rule).
REFERENCE_RUNS = {
    "countdown": ("dapo-norm", "grpo-norm", "dr-grpo-norm", "dr-grpo", "delta-l-norm-alpha-1"),
    "math": ("dapo-norm", "grpo-norm", "dr-grpo-norm", "dr-grpo", "delta-l-norm-alpha-0.75"),
}
# (task, DAPO variant) of the reference's recipes that ran on 8 GPUs.
REFERENCE_8_GPU_RECIPES = {("countdown", "w-soft-punishment"), ("math", "w-soft-punishment"), ("math", "wo-sp-wo-of")}
REFERENCE_NAMES = [f"train_scripts/{task}-3b-{slug}.sh" for task, slugs in REFERENCE_RUNS.items() for slug in slugs] + [
    f"recipe/dapo/{task}-dapo-3b-{variant}.sh"
    for task, alpha in (("countdown", "1"), ("math", "0.75"))
    for variant in ("w-overlong-filtering", "w-soft-punishment", "wo-sp-wo-of", f"delta-L-norm-alpha-{alpha}")
]


@dataclass(frozen=True)
class Expected:
    """What a script's name says it runs."""

    task: str
    method: str
    alpha: float | None
    model: str
    settings: str  # paper | reference | reference-dapo (train_scripts/common.sh)
    max_response_length: int | None  # paper runs: from the name
    countdown_steps: int | None
    math_epochs: int | None
    dapo_variant: str | None  # w-overlong-filtering | w-soft-punishment | wo-sp-wo-of | delta-l | None


def expected_from_name(path: Path) -> Expected:
    """Parse a launch script's file name into the run it must describe."""
    name = path.name.removesuffix(".sh")
    dapo = re.fullmatch(r"(countdown|math)-dapo-3b-(.+)", name)
    if dapo:
        task, variant = dapo.groups()
        if variant.startswith("delta-L-norm-alpha-"):
            alpha = float(variant.removeprefix("delta-L-norm-alpha-"))
            return Expected(task, "delta_l", alpha, "Qwen/Qwen2.5-3B", "reference-dapo", None, None, None, "delta-l")
        return Expected(task, "dapo_norm", None, "Qwen/Qwen2.5-3B", "reference-dapo", None, None, None, variant)
    match = re.fullmatch(r"(countdown|math)-(3b-3072|7b-3072|3b-8192|3b)-(.+)", name)
    assert match, f"{path.name} follows neither {{task}}-{{model}}-{{length}}-{{method}}.sh nor a reference name"
    task, model_slug, method_slug = match.groups()
    method, alpha = PAPER_METHODS[method_slug]
    if model_slug == "3b":
        assert method_slug in REFERENCE_RUNS[task], (
            f"{path.name}: a name without a length is reserved for reference runs"
        )
        return Expected(task, method, alpha, "Qwen/Qwen2.5-3B", "reference", None, None, None, None)
    model, length, steps, epochs = PAPER_MODELS[model_slug]
    return Expected(task, method, alpha, model, "paper", length, steps, epochs, None)


def launch_scripts() -> list[Path]:
    train = [p for p in sorted(TRAIN_SCRIPTS.glob("*.sh")) if p.name not in NOT_PAPER_RUNS]
    return train + sorted(DAPO_SCRIPTS.glob("*.sh"))


SCRIPTS = launch_scripts()


def script_id(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    """The stand-in python of tests/recording_python.py (flash-attn's kernels import only with $FAKE_FLASH_ATTN)."""
    return write_recording_python(tmp_path_factory.mktemp("shim") / "capture_python")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment a user without any deltal knobs set would have, plus ``extra``."""
    knobs = re.compile(
        r"^(N_GPUS|N_NODES|BASE_MODEL|DATA_DIR|DATA_ROOT|MAX_\w+|ROLLOUT_\w+|PROJECT_NAME|"
        r"EXPERIMENT_NAME|SEED|CKPT_DIR|LOG_DIR|MATH_SERVER_\w+|RAY_ADDRESS|WANDB_\w+|VERL_\w+|"
        r"TOTAL_\w+|VAL_\w+|DRY_RUN|DELTAL_\w+|TASK|MODEL|RUN_METHOD|SETTINGS|ATTN_IMPL|SCRATCH_DIR|OFFLOAD|"
        r"GPU_\w+|TRAIN_\w+|MINI_\w+|LR|CLIP_\w+|TEST_FREQ|SAVE_FREQ|TEMPERATURE|PPO_\w+|FAKE_\w+|ENFORCE_EAGER|OVERLONG_\w+)$"
    )
    env = {key: value for key, value in os.environ.items() if not knobs.match(key)}
    env.update(HOME=str(tmp_path), **extra)
    return env


def capture(script: Path, shim: Path, tmp_path: Path, *args: str, **env_extra: str) -> list[str]:
    """Run ``script`` with the shim as python; return the argv of its deltal.train call."""
    out = tmp_path / f"{script.name}.jsonl"
    out.unlink(missing_ok=True)
    env = clean_env(tmp_path, DELTAL_PYTHON=str(shim), **{RECORD_VARIABLE: str(out)}, **env_extra)
    result = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return recorded_train_command(out)


@pytest.fixture(scope="module")
def captured(shim, tmp_path_factory) -> dict[Path, list[str]]:
    home = tmp_path_factory.mktemp("home")
    return {script: capture(script, shim, home) for script in SCRIPTS}


def overrides_of(argv: list[str]) -> dict[str, str]:
    """key -> value of a deltal.train command line (last one wins, as in hydra); '+' prefixes dropped."""
    assert argv[:2] == ["-m", "deltal.train"], argv[:2]
    pairs = {}
    for item in argv[2:]:
        key, _, value = item.partition("=")
        pairs[key.lstrip("+")] = value
    return pairs


def test_reference_repository_script_names_all_exist():
    missing = [name for name in REFERENCE_NAMES if not (REPO / name).is_file()]
    assert not missing


def test_every_paper_run_has_a_script_named_with_its_length_and_reference_names_only_reference_runs():
    paper = {
        f"{task}-{model}-{method}.sh"
        for task in ("countdown", "math")
        for model in PAPER_MODELS
        for method in PAPER_METHODS
    }
    reference = {Path(name).name for name in REFERENCE_NAMES if name.startswith("train_scripts/")}
    actual = {p.name for p in TRAIN_SCRIPTS.glob("*.sh")} - NOT_PAPER_RUNS
    assert actual == paper | reference
    assert len({p.name for p in DAPO_SCRIPTS.glob("*.sh")}) == 8


@pytest.mark.parametrize("script", SCRIPTS + [TRAIN_SCRIPTS / "common.sh"], ids=script_id)
def test_script_passes_bash_syntax_check(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_script_is_declarative_and_passes_extra_arguments_last(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -xeuo pipefail" in text
    assert text.rstrip().endswith('"$@"')
    assert f"SETTINGS={expected_from_name(script).settings}\n" in text
    # deltal derives these from the method; a script that set them could contradict it.
    for derived in ("adv_estimator", "loss_agg_mode", "loss_scale_factor", "norm_adv_by_std_in_grpo"):
        assert derived not in text


def test_extra_command_line_arguments_reach_deltal_train_last(shim, tmp_path):
    argv = capture(TRAIN_SCRIPTS / "countdown-3b-grpo-norm.sh", shim, tmp_path, "trainer.total_training_steps=3")
    assert argv[-1] == "trainer.total_training_steps=3"


@pytest.mark.parametrize("script", SCRIPTS, ids=script_id)
def test_script_runs_what_its_name_says(script, captured):
    want = expected_from_name(script)
    got = overrides_of(captured[script])

    assert got["method"] == want.method
    if want.alpha is None:
        assert "algorithm.grpopp_config.alpha" not in got
    else:
        assert float(got["algorithm.grpopp_config.alpha"]) == want.alpha
    assert got["actor_rollout_ref.model.path"] == want.model
    assert (got["reward.custom_reward_function.path"], got["reward.custom_reward_function.name"]) == (
        "pkg://deltal.rewards",
        "compute_score_async",
    )
    if want.task == "countdown":
        assert got["data.train_files"].endswith("/countdown/train.parquet")
        assert got["data.val_files"].endswith("/countdown/test.parquet")
    else:
        assert got["data.train_files"].endswith("/math/train.parquet")
        for split in ("math500", "aime2024", "amc", "minerva"):
            assert f"/math/{split}.parquet" in got["data.val_files"]
    if "7b" in script.name:
        assert got["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "2"

    dapo = want.dapo_variant is not None
    assert got.get("algorithm.filter_groups.enable", "False") == str(dapo)
    assert got.get("algorithm.filter_overlong_response.enable", "False") == str(
        want.dapo_variant == "w-overlong-filtering"
    )
    # The reference runs every DAPO recipe with its dapo reward manager; only soft punishment turns its buffer on.
    assert (got.get("reward.reward_manager.name") == "dapo") == dapo
    soft = want.dapo_variant == "w-soft-punishment"
    assert ("reward.reward_kwargs.overlong_buffer_cfg.enable" in got) == soft
    if soft:
        assert got["reward.reward_kwargs.overlong_buffer_cfg.enable"] == "True"
        assert got["reward.reward_kwargs.overlong_buffer_cfg.len"] == "2048"


def test_run_name_encodes_task_method_model_length_settings_and_seed(captured):
    names = {s.name: overrides_of(argv)["trainer.experiment_name"] for s, argv in captured.items()}
    assert names["countdown-3b-3072-delta-l-norm-alpha-1.sh"] == "countdown__delta_l_alpha_1__qwen2.5-3b-len3072__seed1"
    assert names["countdown-3b-delta-l-norm-alpha-1.sh"] == "countdown__delta_l_alpha_1__qwen2.5-3b-len8192-ref__seed1"
    assert names["math-7b-3072-dr-grpo.sh"] == "math__dr_grpo__qwen2.5-7b-len3072__seed1"
    assert names["math-3b-8192-delta-l-norm-alpha-0.75.sh"] == "math__delta_l_alpha_0.75__qwen2.5-3b-len8192__seed1"
    assert (
        names["countdown-dapo-3b-w-soft-punishment.sh"]
        == "countdown__dapo_w_soft_punishment__qwen2.5-3b-len3072-ref__seed1"
    )
    assert len(set(names.values())) == len(names), "two scripts would write to the same run"


def test_environment_knobs_change_the_command_line(shim, tmp_path):
    argv = capture(
        TRAIN_SCRIPTS / "math-3b-3072-grpo-norm.sh",
        shim,
        tmp_path,
        N_GPUS="4",
        SEED="7",
        DATA_DIR="/data/m",
        BASE_MODEL="/models/q3b",
        MATH_SERVER_URL="http://10.0.0.5:7000",
        ROLLOUT_TP_SIZE="2",
        SCRATCH_DIR="/scratch/me",
    )
    got = overrides_of(argv)
    assert got["trainer.n_gpus_per_node"] == "4"
    assert got["data.seed"] == got["actor_rollout_ref.rollout.seed"] == "7"
    assert got["trainer.experiment_name"] == "math__grpo_norm__qwen2.5-3b-len3072__seed7"
    assert got["data.train_files"] == "/data/m/train.parquet"
    assert got["actor_rollout_ref.model.path"] == "/models/q3b"
    assert got["ray_kwargs.ray_init.runtime_env.env_vars.MATH_SERVER_URL"] == "http://10.0.0.5:7000"
    assert got["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "2"
    assert got["trainer.default_local_dir"] == "/scratch/me/checkpoints/deltal/" + got["trainer.experiment_name"]


def test_checkpoints_default_to_a_scratch_folder_outside_the_repository(captured, tmp_path):
    for argv in captured.values():
        ckpt = Path(overrides_of(argv)["trainer.default_local_dir"])
        assert REPO not in ckpt.parents and ckpt.parts[-4:-2] == ("deltal", "checkpoints")


def test_several_nodes_without_a_ray_cluster_stop_with_instructions(shim, tmp_path):
    env = clean_env(tmp_path, DELTAL_PYTHON=str(shim), **{RECORD_VARIABLE: str(tmp_path / "x.jsonl")}, N_NODES="2")
    result = subprocess.run(
        ["bash", str(TRAIN_SCRIPTS / "countdown-7b-3072-grpo-norm.sh")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "RAY_ADDRESS" in result.stderr and "ray start --head" in result.stderr
    assert not (tmp_path / "x.jsonl").exists()
    argv = capture(
        TRAIN_SCRIPTS / "countdown-7b-3072-grpo-norm.sh", shim, tmp_path, N_NODES="2", RAY_ADDRESS="10.0.0.1:6379"
    )
    assert overrides_of(argv)["trainer.nnodes"] == "2"


def test_flash_attention_when_its_kernels_import_else_sdpa_without_remove_padding_said_in_one_line(shim, tmp_path):
    script = TRAIN_SCRIPTS / "countdown-3b-3072-grpo-norm.sh"
    out = tmp_path / "argv.jsonl"
    env = clean_env(tmp_path, DELTAL_PYTHON=str(shim), **{RECORD_VARIABLE: str(out)})
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    got = overrides_of(recorded_train_command(out))
    assert got["actor_rollout_ref.model.override_config.attn_implementation"] == "sdpa"
    assert got["actor_rollout_ref.model.use_remove_padding"] == "False"
    # The reason comes from the flash-attn check (deltal.attention_kernels), in one line.
    notes = [line for line in result.stderr.splitlines() if line.startswith("common.sh: flash-attn's CUDA kernels")]
    assert len(notes) == 1 and "undefined symbol: the actor uses SDPA attention without remove-padding" in notes[0]

    got = overrides_of(capture(script, shim, tmp_path, FAKE_FLASH_ATTN="1"))
    assert got["actor_rollout_ref.model.override_config.attn_implementation"] == "flash_attention_2"
    assert got["actor_rollout_ref.model.use_remove_padding"] == "True"
    got = overrides_of(capture(script, shim, tmp_path, FAKE_FLASH_ATTN="1", ATTN_IMPL="sdpa"))
    assert got["actor_rollout_ref.model.override_config.attn_implementation"] == "sdpa"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROLLOUT_NAME": "sglang"}, "ROLLOUT_NAME=sglang is not supported"),
        ({"ATTN_IMPL": "eager"}, "unknown ATTN_IMPL='eager'"),
        ({"ROLLOUT_TP_SIZE": "16"}, "ROLLOUT_TP_SIZE=16 exceeds the 8 GPUs"),
    ],
)
def test_unsupported_knob_values_stop_before_python_with_the_fix(shim, tmp_path, env, message):
    out = tmp_path / "argv.jsonl"
    full_env = clean_env(tmp_path, DELTAL_PYTHON=str(shim), **{RECORD_VARIABLE: str(out)}, **env)
    result = subprocess.run(
        ["bash", str(TRAIN_SCRIPTS / "math-7b-3072-dapo-norm.sh")], env=full_env, capture_output=True, text=True
    )
    assert result.returncode == 2 and message in result.stderr
    assert not out.exists()


def test_shared_raw_prompt_template_is_deltals_constant():
    from deltal.data.rl_format import RAW_PROMPT_CHAT_TEMPLATE

    assert f"RAW_PROMPT_CHAT_TEMPLATE='{RAW_PROMPT_CHAT_TEMPLATE}'" in (TRAIN_SCRIPTS / "common.sh").read_text()


# Method preset -> (verl estimator, loss_agg_mode, constant denominator?), the aggregations of paper Table 1.
RESOLVED = {
    "grpo_norm": ("deltal_grpo", "seq-mean-token-mean", False),
    "dapo_norm": ("deltal_grpo", "token-mean", False),
    "dr_grpo_norm": ("deltal_grpo", "seq-mean-token-sum-norm", True),
    "dr_grpo": ("deltal_grpo", "seq-mean-token-sum-norm", True),
    "delta_l": ("delta_l", "seq-mean-token-sum-norm", True),
}


def _by_task(countdown, math):
    return lambda want: countdown if want.task == "countdown" else math


# The parity table (train_scripts/README.md): resolved config key -> expected value per SETTINGS column
# (paper = the paper's Appendix A.2 run, reference = the reference's train_scripts/, reference-dapo = its
# recipe/dapo/). A callable computes the value from the script's name.
PARITY = {
    "data.max_response_length": {
        "paper": lambda want: want.max_response_length,
        "reference": 8192,
        "reference-dapo": 3072,
    },
    "data.max_prompt_length": dict.fromkeys(("paper", "reference", "reference-dapo"), _by_task(256, 1024)),
    "data.train_batch_size": dict.fromkeys(("paper", "reference", "reference-dapo"), 128),
    "actor_rollout_ref.rollout.n": {"paper": 10, "reference": 10, "reference-dapo": 8},
    "actor_rollout_ref.actor.ppo_mini_batch_size": dict.fromkeys(("paper", "reference", "reference-dapo"), 32),
    "actor_rollout_ref.actor.optim.lr": dict.fromkeys(("paper", "reference", "reference-dapo"), 1e-6),
    "actor_rollout_ref.actor.clip_ratio_low": dict.fromkeys(("paper", "reference", "reference-dapo"), 0.2),
    "actor_rollout_ref.actor.clip_ratio_high": dict.fromkeys(("paper", "reference", "reference-dapo"), 0.3),
    "actor_rollout_ref.actor.clip_ratio_c": {"paper": 3.0, "reference": 3.0, "reference-dapo": 10.0},
    "actor_rollout_ref.actor.use_kl_loss": dict.fromkeys(("paper", "reference", "reference-dapo"), False),
    "actor_rollout_ref.actor.entropy_coeff": dict.fromkeys(("paper", "reference", "reference-dapo"), 0),
    "actor_rollout_ref.actor.strategy": dict.fromkeys(("paper", "reference", "reference-dapo"), "fsdp2"),
    "actor_rollout_ref.actor.fsdp_config.param_offload": {"paper": False, "reference": True, "reference-dapo": True},
    "actor_rollout_ref.actor.fsdp_config.optimizer_offload": {
        "paper": False,
        "reference": True,
        "reference-dapo": True,
    },
    "actor_rollout_ref.rollout.name": dict.fromkeys(("paper", "reference", "reference-dapo"), "vllm"),
    "actor_rollout_ref.rollout.gpu_memory_utilization": {
        "paper": lambda want: 0.8 if want.max_response_length == 8192 else 0.6,
        "reference": 0.8,
        "reference-dapo": 0.8,
    },
    "actor_rollout_ref.rollout.temperature": dict.fromkeys(("paper", "reference", "reference-dapo"), 1.0),
    "actor_rollout_ref.rollout.val_kwargs.n": dict.fromkeys(("paper", "reference", "reference-dapo"), 8),
    "actor_rollout_ref.rollout.val_kwargs.temperature": dict.fromkeys(("paper", "reference", "reference-dapo"), 1.0),
    "actor_rollout_ref.rollout.val_kwargs.do_sample": dict.fromkeys(("paper", "reference", "reference-dapo"), True),
    "trainer.n_gpus_per_node": {
        "paper": 8,
        "reference": 4,
        # The reference ran both soft-punishment recipes and Math wo-sp-wo-of on 8 GPUs, the others on 4.
        "reference-dapo": lambda want: 8 if (want.task, want.dapo_variant) in REFERENCE_8_GPU_RECIPES else 4,
    },
    # The reference's verl ran vLLM without CUDA graphs and seeded it with 0; paper runs keep verl's graphs and SEED.
    "actor_rollout_ref.rollout.enforce_eager": {"paper": False, "reference": True, "reference-dapo": True},
    "actor_rollout_ref.rollout.seed": {"paper": 1, "reference": 0, "reference-dapo": 0},
    "trainer.total_training_steps": {
        "paper": lambda want: want.countdown_steps if want.task == "countdown" else None,
        "reference": None,
        "reference-dapo": None,
    },
    "trainer.total_epochs": {
        "paper": lambda want: 10000 if want.task == "countdown" else want.math_epochs,
        "reference": 15,
        "reference-dapo": _by_task(1500, 15),
    },
    "trainer.test_freq": {"paper": 50, "reference": 50, "reference-dapo": _by_task(25, 50)},
    "trainer.val_before_train": {"paper": True, "reference": True, "reference-dapo": False},
    "trainer.save_freq": {"paper": 100, "reference": _by_task(1000, 2000), "reference-dapo": 1000},
    "algorithm.filter_groups.enable": {"paper": False, "reference": False, "reference-dapo": True},
    # (verl's default "reward" where filtering is off)
    "algorithm.filter_groups.metric": {
        "paper": "reward",
        "reference": "reward",
        "reference-dapo": _by_task("acc", "reward"),
    },
    "algorithm.filter_groups.max_inflight_gen_batches": {"paper": 1, "reference": 1, "reference-dapo": 3},
    "reward.reward_manager.name": {"paper": "naive", "reference": "naive", "reference-dapo": "dapo"},
}


def _select(cfg, key: str):
    from omegaconf import OmegaConf

    return OmegaConf.select(cfg, key, throw_on_missing=True)


@pytest.mark.slow  # one hydra compose of verl's full config per script, in this one process: about 1 s each
def test_every_script_resolves_to_its_column_of_the_parity_table(captured, tmp_path, monkeypatch):
    from deltal.train import compose_config, validate_config

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    mismatches = []
    for script, argv in captured.items():
        want = expected_from_name(script)
        # What DRY_RUN=1 prints: the composed config after deltal's resolver and verl's own validation.
        cfg = validate_config(compose_config(argv[2:]))
        for key, column in PARITY.items():
            expected = column[want.settings]
            expected = expected(want) if callable(expected) else expected
            if _select(cfg, key) != expected:
                mismatches.append(f"{script.name}: {key} = {_select(cfg, key)!r}, parity table says {expected!r}")

        actor, rollout, algo = cfg.actor_rollout_ref.actor, cfg.actor_rollout_ref.rollout, cfg.algorithm
        estimator, mode, constant = RESOLVED[want.method]
        assert (algo.adv_estimator, actor.loss_agg_mode) == (estimator, mode), script.name
        assert actor.loss_scale_factor == (cfg.data.max_response_length if constant else None), script.name
        assert algo.norm_adv_by_std_in_grpo == (want.method != "dr_grpo"), script.name
        if want.alpha is not None:
            assert algo.grpopp_config.alpha == want.alpha
        # Every response of the prompts in flight fits in one wave of vLLM sequences over the replicas (verl's
        # default of 256 per replica is the floor).
        replicas = cfg.trainer.n_gpus_per_node * cfg.trainer.nnodes // rollout.tensor_model_parallel_size
        in_flight = cfg.data.train_batch_size * algo.filter_groups.max_inflight_gen_batches * rollout.n
        assert rollout.max_num_seqs == max(256, -(-in_flight // replicas)), script.name
        if want.dapo_variant == "w-soft-punishment":
            assert cfg.reward.reward_kwargs.max_resp_len == cfg.data.max_response_length
    assert not mismatches, "\n".join(mismatches)


def _dry_run(script: Path, tmp_path: Path, *overrides: str, **env_extra: str) -> dict:
    env = clean_env(tmp_path, DELTAL_PYTHON=sys.executable, DRY_RUN="1", HF_HOME=str(tmp_path / "hf"), **env_extra)
    result = subprocess.run(["bash", str(script), *overrides], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load(result.stdout)


@pytest.mark.slow
def test_countdown_delta_l_script_dry_run_prints_the_resolved_config(tmp_path):
    # extra arguments are hydra overrides passed on through "$@": here ΔL's options beyond the paper
    options = ["algorithm.grpopp_config.scope=group", "algorithm.grpopp_config.exclude_zero_advantage=true"]
    cfg = _dry_run(TRAIN_SCRIPTS / "countdown-3b-3072-delta-l-norm-alpha-1.sh", tmp_path, *options)
    assert cfg["algorithm"]["adv_estimator"] == "delta_l"
    assert cfg["algorithm"]["deltal"] == {
        "method": "delta_l",
        "alpha": 1.0,
        "max_response_length": 3072,
        "scope": "group",
        "exclude_zero_advantage": True,
    }
    assert cfg["actor_rollout_ref"]["actor"]["loss_scale_factor"] == 3072
    assert cfg["trainer"]["experiment_name"] == "countdown__delta_l_alpha_1__qwen2.5-3b-len3072__seed1"
    # This machine has no flash-attn: the real probe of common.sh picks SDPA.
    assert cfg["actor_rollout_ref"]["model"]["override_config"]["attn_implementation"] == "sdpa"
    assert cfg["actor_rollout_ref"]["model"]["use_remove_padding"] is False


@pytest.mark.slow
def test_math_soft_punishment_recipe_dry_run_prints_the_resolved_config(tmp_path):
    cfg = _dry_run(DAPO_SCRIPTS / "math-dapo-3b-w-soft-punishment.sh", tmp_path)
    assert cfg["actor_rollout_ref"]["actor"]["loss_agg_mode"] == "token-mean"
    assert cfg["reward"]["reward_manager"]["name"] == "dapo"
    # The reference's soft punishment, to the logging switch it left off.
    assert cfg["reward"]["reward_kwargs"] == {
        "max_resp_len": 3072,
        "overlong_buffer_cfg": {"enable": True, "len": 2048, "penalty_factor": 1.0, "log": False},
    }
    assert cfg["algorithm"]["filter_groups"]["enable"] is True
    assert cfg["ray_kwargs"]["ray_init"]["runtime_env"]["env_vars"]["MATH_SERVER_URL"] == "http://127.0.0.1:6284"
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert (rollout["enforce_eager"], rollout["seed"]) == (True, 0)
    assert cfg["trainer"]["n_gpus_per_node"] == 8


@pytest.mark.slow
def test_math_dapo_recipe_without_soft_punishment_or_filtering_runs_on_the_references_8_gpus(tmp_path, shim):
    cfg = _dry_run(DAPO_SCRIPTS / "math-dapo-3b-wo-sp-wo-of.sh", tmp_path)
    assert cfg["trainer"]["n_gpus_per_node"] == 8
    rollout = cfg["actor_rollout_ref"]["rollout"]
    assert (rollout["enforce_eager"], rollout["seed"]) == (True, 0)
    assert cfg["reward"]["reward_manager"]["name"] == "dapo" and "reward_kwargs" not in cfg["reward"]
    assert cfg["algorithm"]["filter_overlong_response"]["enable"] is False
    # The knobs still win.
    argv = capture(DAPO_SCRIPTS / "math-dapo-3b-wo-sp-wo-of.sh", shim, tmp_path, N_GPUS="4", ENFORCE_EAGER="False")
    got = overrides_of(argv)
    assert (got["trainer.n_gpus_per_node"], got["actor_rollout_ref.rollout.enforce_eager"]) == ("4", "False")


@pytest.mark.slow
def test_real_launch_without_data_stops_in_preflight_before_ray(tmp_path):
    env = clean_env(
        tmp_path, DELTAL_PYTHON=sys.executable, DATA_DIR=str(tmp_path / "no_data"), RAY_AUTH_MODE="disabled"
    )
    result = subprocess.run(
        ["bash", str(TRAIN_SCRIPTS / "countdown-3b-3072-delta-l-norm-alpha-1.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "deltal: preflight failed" in result.stderr
    assert f"{tmp_path}/no_data/train.parquet does not exist" in result.stderr
    assert "python -m deltal.data.countdown" in result.stderr
    # No GPU here: the CUDA check reports it in the same list.
    assert "CUDA is not available" in result.stderr
    assert "ray init kwargs" not in result.stdout + result.stderr
