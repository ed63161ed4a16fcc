"""setup.sh's GPU path on every kind of node a cluster has, with the message its user sees.

It picks the torch/vLLM build for the NVIDIA driver it finds (CUDA 13.0 from PyPI for a 580+ driver, the CUDA 12.9
builds from torch's and vLLM's own indexes for a 525-575 driver; CUDA= overrides), says what it will install before
anything downloads (``--dry-run`` stops there), installs flash-attn only as a prebuilt wheel unless a compile is asked
for, keeps flash-attn only when its kernels import with the env's torch (the one check, deltal.attention_kernels),
falls back to SDPA when no wheel fits, bounds every step in time, and creates conda envs without the terms-of-service
prompt. The CPU path is what CI runs for real.

The GPU path runs against stand-ins first on PATH: ``nvidia-smi`` reporting the driver a test chooses (or no GPU, or
no driver), a ``python`` that records every call instead of installing (and plays pip, the env's torch and the
flash-attn builds; the flash-attn check itself runs the real deltal.attention_kernels on stand-in packages), ``nvcc``,
``conda``, ``uname`` and ``getconf`` (glibc).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "setup.sh"
PREBUILT = "https://github.com/mjun0812/flash-attention-prebuild-wheels/releases/download/v0.9.4/flash_attn-2.8.3+"

FAKE_PYTHON = f"""#!{sys.executable} -I
# Records each call; answers setup.sh's questions; plays pip (flash-attn's state lives in $SETUP_LOG.flash).
import os, runpy, shutil, sys, time
from pathlib import Path

LOG = Path(os.environ["SETUP_LOG"])
FLASH = Path(str(LOG) + ".flash")
args = sys.argv[1:]
WATCHED = ("MAX_JOBS", "FLASH_ATTN_CUDA_ARCHS", "CUDA_HOME", "FLASH_ATTENTION_FORCE_BUILD")
watched = " ".join(f"{{k}}={{os.environ.get(k, '')}}" for k in WATCHED)
with LOG.open("a") as log:
    log.write(" ".join([sys.argv[0], *args]) + f" [{{watched}}]\\n")


def flash_state():
    return FLASH.read_text() if FLASH.exists() else os.environ.get("FAKE_FLASH_ATTN", "missing")


if args[:2] == ["-m", "venv"]:
    (Path(args[2]) / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(sys.argv[0], Path(args[2]) / "bin" / "python")
elif args[:2] == ["-m", "deltal.attention_kernels"]:
    # The real check, on a stand-in torch and this env's flash-attn.
    sys.path[:0] = [os.path.join(os.environ["FAKE_FLASH_STATES"], flash_state()), os.environ["DELTAL_REPO"]]
    sys.argv = ["deltal.attention_kernels", *args[2:]]  # as `python -m` leaves it: the module's own arguments only
    runpy.run_module("deltal.attention_kernels", run_name="__main__")
elif args[:1] == ["-c"]:
    code = args[1]
    if "sys.version_info" in code:
        print(os.environ.get("FAKE_PY_VERSION", "3.12"))
    elif "sysconfig" in code:
        print(os.environ["FAKE_SITE"])
    elif "deltal stack check" in code:
        if os.environ.get("FAKE_STACK_PROBLEM"):
            sys.exit(os.environ["FAKE_STACK_PROBLEM"])
        line = args[2]
        print(f"torch 2.11.0{{'+cu129' if line.startswith('12') else ''}} (CUDA {{line}})")
    elif "import deltal.verl_adapter.plugin" in code:
        print("setup.sh: verl 0.9.1, vllm 0.24.0 in deltal")
    elif "sys.executable" in code:
        print(sys.argv[0])
elif args[:2] == ["-m", "pip"]:
    pip = args[2:]
    if "-c" in pip:
        with LOG.open("a") as log:
            log.write("CONSTRAINTS: " + Path(pip[pip.index("-c") + 1]).read_text().replace("\\n", " ") + "\\n")
    if pip[0] == "uninstall" and "flash-attn" in pip:
        FLASH.write_text("missing")
    if pip[0] == "install":
        if os.environ.get("FAKE_PIP_SLEEP") and os.environ.get("FAKE_PIP_SLEEP_ON", "-r") in pip:
            Path(str(LOG) + ".sleeping").write_text(str(os.getpid()))
            time.sleep(float(os.environ["FAKE_PIP_SLEEP"]))
        if any("flash_attn" in a and a.endswith(".whl") for a in pip):
            if os.environ.get("FAKE_WHEEL_DOWNLOAD") == "fail":
                sys.exit("ERROR: Could not install the wheel: Connection to github.com timed out.")
            FLASH.write_text(os.environ.get("FAKE_WHEEL_GIVES", "working"))
        if any(a.startswith("flash-attn==") for a in pip):
            FLASH.write_text("working")
"""
FAKE_NVIDIA_SMI = r"""#!/usr/bin/env bash
# FAKE_SMI: gpus (default), login (a driver but no GPU visible), broken (no driver reachable).
case "${FAKE_SMI:-gpus}:$*" in
  gpus:*driver_version*) echo "$FAKE_DRIVER" ;;
  gpus:*compute_cap*) echo "${FAKE_CAP:-9.0}" ;;
  gpus:--version | login:--version)
    printf 'NVIDIA-SMI version  : %s\nNVML version        : %s\n' "$FAKE_DRIVER" "${FAKE_DRIVER%.*}"
    printf 'DRIVER version      : %s\nCUDA Version        : 12.4\n' "$FAKE_DRIVER" ;;
  login:*) echo "No devices were found"; exit 6 ;;
  *) echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."; exit 9 ;;
esac
"""
FAKE_NVCC = r"""#!/usr/bin/env bash
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Cuda compilation tools, release ${FAKE_NVCC_RELEASE:-13.0}, V${FAKE_NVCC_RELEASE:-13.0}.88"
"""
FAKE_CONDA = f"""#!{sys.executable} -I
# Records each call; `create -n NAME` makes an env whose python is the stand-in; `run -n NAME python ...` runs it.
import os, shutil, subprocess, sys
from pathlib import Path

args = sys.argv[1:]
with open(os.environ["SETUP_LOG"], "a") as log:
    log.write("conda " + " ".join(args) + "\\n")
envs = Path(os.environ["FAKE_CONDA_ENVS"])
name = args[args.index("-n") + 1]
if args[0] == "create":
    (envs / name / "bin").mkdir(parents=True)
    shutil.copy(os.environ["PYTHON"], envs / name / "bin" / "python")
elif args[0] == "run":
    python = envs / name / "bin" / "python"
    if not python.exists():
        sys.exit(f"EnvironmentLocationNotFound: Not a conda environment: {{name}}")
    sys.exit(subprocess.run([str(python), *args[args.index("python") + 1:]]).returncode)
"""
FAKE_UNAME = """#!/usr/bin/env bash
echo aarch64
"""
FAKE_GETCONF = """#!/usr/bin/env bash
echo "glibc $FAKE_GLIBC"
"""
# A stand-in torch for the flash-attn check (the real one would take seconds to import on each call).
STAND_IN_TORCH = "import types\n__version__ = '2.11.0'\nversion = types.SimpleNamespace(cuda='13.0')\n"


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def setup_sh(tmp_path, write_flash_attn_state):
    """run(*args, driver=..., smi=..., nvcc=..., conda=..., arch=..., glibc=..., **env) runs setup.sh on stand-ins in
    a fresh folder per test; ``driver=None`` leaves nvidia-smi off PATH; ``background=True`` returns the running
    process."""
    states = tmp_path / "flash_states"
    for state in ("missing", "no_kernels", "broken", "working"):
        write_flash_attn_state(states / state, state)
        (states / state / "torch").mkdir()
        (states / state / "torch" / "__init__.py").write_text(STAND_IN_TORCH)
    fake_python = tmp_path / "fake_python"
    _executable(fake_python, FAKE_PYTHON)

    def run(
        *args: str,
        driver: str | None = "580.82.07",
        smi: str = "gpus",
        nvcc: bool = True,
        conda: bool = False,
        arch: str = "x86_64",
        glibc: str = "2.35",
        background: bool = False,
        **env_extra: str,
    ) -> subprocess.CompletedProcess | subprocess.Popen:
        bin_dir = tmp_path / "bin"
        if bin_dir.exists():
            for tool in bin_dir.iterdir():
                tool.unlink()
        if driver:
            _executable(bin_dir / "nvidia-smi", FAKE_NVIDIA_SMI)
        if nvcc:
            _executable(bin_dir / "nvcc", FAKE_NVCC)
        if conda:
            _executable(bin_dir / "conda", FAKE_CONDA)
        if arch != "x86_64":
            _executable(bin_dir / "uname", FAKE_UNAME)
        _executable(bin_dir / "getconf", FAKE_GETCONF)
        bin_dir.mkdir(exist_ok=True)
        env = {
            # No conda on PATH unless asked: the venv branch is taken.
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHON": str(fake_python),
            "ENV_ROOT": str(tmp_path / "envs"),
            "SETUP_LOG": str(tmp_path / "calls.log"),
            "FAKE_DRIVER": driver or "",
            "FAKE_SMI": smi,
            "FAKE_GLIBC": glibc,
            "FAKE_FLASH_STATES": str(states),
            "FAKE_SITE": str(tmp_path / "site-packages"),
            "FAKE_CONDA_ENVS": str(tmp_path / "conda_envs"),
            "DELTAL_REPO": str(REPO),
            **env_extra,
        }
        command = ["bash", str(SETUP), *args]
        if background:
            # SIGINT as a terminal leaves it: a suite started in the background (`pytest &` in a script) ignores
            # SIGINT, its children inherit that, and a shell cannot trap a signal ignored when it started.
            return subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdout=PIPE,
                stderr=PIPE,
                text=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    return run


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def pip_calls(tmp_path: Path) -> list[str]:
    return [line for line in calls(tmp_path) if " -m pip " in line]


def flash_attn_installs(tmp_path: Path) -> list[str]:
    return [
        line for line in pip_calls(tmp_path) if "install" in line and ("flash_attn-" in line or "flash-attn" in line)
    ]


def plan_line(stdout: str, field: str) -> str:
    (line,) = [line for line in stdout.splitlines() if line.startswith(f"  {field}:")]
    return line


# ------------------------------------------------------------------ which build for which driver


def test_cuda_13_driver_gets_pypis_build_and_the_cu130_flash_attn_wheel_without_installing(setup_sh, tmp_path):
    result = setup_sh("--dry-run", "--venv", driver="580.82.07")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nothing is installed" in out
    assert plan_line(out, "node").endswith("NVIDIA driver 580.82.07, GPU compute capability 9.0; glibc 2.35")
    assert "note:" not in out
    assert "CUDA line:   13.0 (the newest build driver 580.82.07 runs)" in out
    assert "requirements.txt: verl 0.9.1, torch 2.11.0, torchvision 0.26.0, torchaudio 2.11.0, vllm 0.24.0" in out
    assert plan_line(out, "from") == "  from:        pypi.org"
    assert f"{PREBUILT}cu130torch2.11-cp312-cp312-linux_x86_64.whl" in plan_line(out, "flash-attn")
    assert "community build" in plan_line(out, "flash-attn") and "SDPA" in plan_line(out, "flash-attn")
    assert pip_calls(tmp_path) == [] and not (tmp_path / "envs").exists(), "a dry run installs nothing"


def test_cuda_12_driver_gets_the_cu129_builds_from_torchs_and_vllms_own_indexes(setup_sh):
    result = setup_sh("--dry-run", "--venv", driver="535.183.01")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "CUDA line:   12.9 (the newest build driver 535.183.01 runs; CUDA 13.0 needs >= 580.65.06)" in out
    packages = plan_line(out, "packages")
    assert packages.startswith("  packages:    requirements-cu129.txt: verl 0.9.1, torch 2.11.0+cu129,")
    assert "torchvision 0.26.0+cu129, torchaudio 2.11.0+cu129, vllm 0.24.0+cu129, transformers 5.9.0" in packages
    assert plan_line(out, "from") == (
        "  from:        pypi.org, https://download.pytorch.org/whl/cu129, https://wheels.vllm.ai/0.24.0/cu129"
    )
    # flash-attn's cu128 build: its kernels load under torch's CUDA 12.9 runtime.
    assert f"{PREBUILT}cu128torch2.11-cp312-cp312-linux_x86_64.whl" in plan_line(out, "flash-attn")


@pytest.mark.parametrize(
    ("driver", "line"),
    [
        ("590.44.01", "13.0"),
        ("580.65.06", "13.0"),
        # The whole version counts, not only the major: 580.65.05 predates CUDA 13.0's minimum.
        ("580.65.05", "12.9"),
        ("575.57.08", "12.9"),
        ("550.54.15", "12.9"),
        ("525.60.13", "12.9"),
    ],
)
def test_driver_version_picks_the_newest_line_it_runs(setup_sh, driver, line):
    result = setup_sh("--dry-run", "--venv", driver=driver)
    assert result.returncode == 0, result.stderr
    assert f"CUDA line:   {line} (" in result.stdout


def test_driver_older_than_every_build_stops_with_the_fix(setup_sh, tmp_path):
    result = setup_sh("--venv", driver="470.256.02")
    assert result.returncode == 2
    assert "NVIDIA driver 470.256.02 is older than every build deltal installs" in result.stderr
    assert "CUDA 12.9 needs >= 525.60.13" in result.stderr and "Upgrade the driver" in result.stderr
    assert "SKIP_DRIVER_CHECK=1 and CUDA=12.9 or CUDA=13.0" in result.stderr
    assert pip_calls(tmp_path) == []
    assert setup_sh("--venv", driver="470.256.02", SKIP_DRIVER_CHECK="1").returncode == 2, "which line? CUDA= says"
    result = setup_sh("--dry-run", "--venv", driver="470.256.02", SKIP_DRIVER_CHECK="1", CUDA="12.9")
    assert result.returncode == 0, result.stderr
    assert "CUDA line:   12.9 (CUDA=12.9; SKIP_DRIVER_CHECK=1: driver 470.256.02 here cannot run it)" in result.stdout


def test_cuda_chosen_by_the_user_is_checked_against_this_nodes_driver(setup_sh):
    result = setup_sh("--dry-run", "--venv", driver="535.183.01", CUDA="13.0")
    assert result.returncode == 2
    assert "NVIDIA driver 535.183.01 cannot run the CUDA 13.0 build (it needs >= 580.65.06)" in result.stderr
    assert "Use CUDA=12.9" in result.stderr
    result = setup_sh("--dry-run", "--venv", driver="535.183.01", CUDA="13.0", SKIP_DRIVER_CHECK="1")
    assert result.returncode == 0 and "CUDA line:   13.0 (CUDA=13.0; SKIP_DRIVER_CHECK=1" in result.stdout
    # Any CUDA 12 means the 12.9 builds, which run on every CUDA 12 driver.
    result = setup_sh("--dry-run", "--venv", driver="580.82.07", CUDA="12.8")
    assert result.returncode == 0, result.stderr
    assert "CUDA line:   12.9 (CUDA=12.8: vLLM publishes CUDA 12 builds for 12.9 only" in result.stdout
    result = setup_sh("--dry-run", "--venv", CUDA="11.8")
    assert result.returncode == 2 and "CUDA=11.8 is not a line deltal installs" in result.stderr


def test_login_node_with_a_driver_but_no_gpu_installs_for_that_driver(setup_sh, tmp_path):
    result = setup_sh("--venv", "--skip-server", driver="550.54.15", smi="login")
    assert result.returncode == 0, result.stderr
    assert "NVIDIA driver 550.54.15, but no GPU visible here (a login node?)" in result.stdout
    assert "CUDA line:   12.9" in result.stdout
    assert any("install -q -r requirements-cu129.txt" in line for line in pip_calls(tmp_path))
    assert "GPU environment ready (CUDA 12.9 build)" in result.stdout


@pytest.mark.parametrize(
    ("driver", "smi", "node"),
    [
        (None, "gpus", "no NVIDIA driver here (nvidia-smi not found)"),
        ("550.54.15", "broken", "nvidia-smi is here but reaches no driver and no GPU (a login node?)"),
    ],
)
def test_no_driver_to_ask_installs_the_build_every_driver_runs(setup_sh, driver, smi, node):
    result = setup_sh("--dry-run", "--venv", driver=driver, smi=smi)
    assert result.returncode == 0, result.stderr
    assert f"node:        {node}" in result.stdout
    assert "CUDA line:   12.9 (no driver to ask: the CUDA 12.9 build runs on every driver >= 525.60.13" in result.stdout
    assert "CUDA=13.0 picks PyPI's CUDA 13 build" in result.stdout


def test_a_glibc_without_wheels_for_the_whole_stack_is_named_before_installing(setup_sh):
    result = setup_sh("--dry-run", "--venv", glibc="2.28")
    assert result.returncode == 0, result.stderr
    note = plan_line(result.stdout, "note")
    assert "glibc 2.28 is older than 2.31, the oldest with a wheel for vLLM's llguidance" in note
    assert "needs a Rust toolchain" in note


# ------------------------------------------------------------------ the install


def test_gpu_install_order_pins_prebuilt_flash_attn_deltal_and_server_env(setup_sh, tmp_path):
    result = setup_sh("--venv")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    train_py, server_py = str(tmp_path / "envs/deltal/bin/python"), str(tmp_path / "envs/deltal_server/bin/python")
    train = [line for line in log if line.startswith(train_py)]
    # The pinned stack, its check, flash-attn (after torch), deltal last, held to the pins.
    order = [
        next(i for i, line in enumerate(train) if "install -q -r requirements.txt" in line),
        next(i for i, line in enumerate(train) if "deltal stack check" in line),
        next(i for i, line in enumerate(train) if "install -q --no-deps " + PREBUILT in line),
        next(i for i, line in enumerate(train) if "-e .[test,trl]" in line),
    ]
    assert order == sorted(order)
    assert f"{PREBUILT}cu130torch2.11-cp312-cp312-linux_x86_64.whl" in train[order[2]]
    constraints = next(line for line in log if line.startswith("CONSTRAINTS:"))
    assert "verl==0.9.1" in constraints and "torch==2.11.0" in constraints and "[" not in constraints
    assert any("install -q -r server/math/requirements.txt" in line for line in log if line.startswith(server_py))
    out = result.stdout
    assert out.index("CUDA line:") < out.index("flash-attn: downloading"), "the plan comes before any download"
    assert "setup.sh: torch 2.11.0 (CUDA 13.0)" in out
    assert "flash-attn installed; its kernels import with this torch" in out
    assert "attention: flash-attn with remove-padding" in out
    assert "bash train_scripts/countdown-3b-3072-delta-l-norm-alpha-1.sh" in out
    assert f"PYTHON={tmp_path / 'envs'}/deltal_server/bin/python bash server/math/start.sh" in out


def test_a_stack_of_the_wrong_cuda_stops_before_flash_attn(setup_sh, tmp_path):
    problem = "CUDA 13 libraries beside a CUDA 12 torch: nvidia-cudnn-cu13"
    result = setup_sh("--venv", "--skip-server", driver="535.183.01", FAKE_STACK_PROBLEM=problem)
    assert result.returncode == 2
    assert f"the environment does not hold the CUDA 12.9 build: {problem}" in result.stderr
    assert "Remove the env (deltal) and rerun" in result.stderr
    assert flash_attn_installs(tmp_path) == []


@pytest.mark.parametrize(
    ("before", "said"),
    [
        ("no_kernels", "flash-attn is installed without its CUDA kernels (no flash_attn_2_cuda module"),
        ("broken", "flash-attn's CUDA kernels do not import with torch 2.11.0 (CUDA 13.0): ImportError"),
    ],
)
def test_half_installed_flash_attn_is_removed_and_installed_again(setup_sh, tmp_path, before, said):
    result = setup_sh("--venv", "--skip-server", FAKE_FLASH_ATTN=before)
    assert result.returncode == 0, result.stderr
    assert said in result.stdout and "removing it before installing flash-attn again" in result.stdout
    uninstall = next(i for i, line in enumerate(pip_calls(tmp_path)) if "uninstall -q -y flash-attn" in line)
    install = next(i for i, line in enumerate(pip_calls(tmp_path)) if PREBUILT in line)
    assert uninstall < install
    assert "attention: flash-attn with remove-padding" in result.stdout


def test_working_flash_attn_is_kept(setup_sh, tmp_path):
    result = setup_sh("--venv", "--skip-server", FAKE_FLASH_ATTN="working")
    assert result.returncode == 0, result.stderr
    assert "flash-attn already installed; its kernels import with this torch" in result.stdout
    assert flash_attn_installs(tmp_path) == []


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"FAKE_WHEEL_DOWNLOAD": "fail"}, "the prebuilt flash-attn wheel could not be installed, see above"),
        ({"FAKE_WHEEL_GIVES": "broken"}, "flash-attn's CUDA kernels do not import with torch 2.11.0"),
    ],
)
def test_a_prebuilt_wheel_that_does_not_work_leaves_sdpa_and_says_so(setup_sh, tmp_path, env, reason):
    result = setup_sh("--venv", "--skip-server", **env)
    assert result.returncode == 0, result.stderr
    (note,) = [line for line in result.stdout.splitlines() if line.startswith("setup.sh: attention:")]
    assert reason in note and "the actor then runs on SDPA attention without remove-padding" in note
    assert "slower actor updates" in note
    assert not any("-m pip install -v" in line for line in pip_calls(tmp_path)), "nothing compiles"
    if "FAKE_WHEEL_GIVES" in env:
        assert any("uninstall -q -y flash-attn" in line for line in pip_calls(tmp_path)), "the broken one goes"


def test_a_wheel_the_user_names_is_installed_and_must_work(setup_sh, tmp_path):
    result = setup_sh("--venv", "--skip-server", FLASH_ATTN_WHEEL="/wheels/flash_attn-2.8.3-cp312.whl")
    assert result.returncode == 0, result.stderr
    assert "flash-attn:  the wheel you named, FLASH_ATTN_WHEEL=/wheels/flash_attn-2.8.3-cp312.whl" in result.stdout
    assert any("install -q --no-deps /wheels/flash_attn-2.8.3-cp312.whl" in line for line in pip_calls(tmp_path))
    assert not any(PREBUILT in line for line in pip_calls(tmp_path))


def test_a_wheel_the_user_names_that_does_not_work_stops_with_what_to_check(setup_sh):
    result = setup_sh(
        "--venv", "--skip-server", FLASH_ATTN_WHEEL="/wheels/flash_attn-other-torch.whl", FAKE_WHEEL_GIVES="broken"
    )
    assert result.returncode == 2
    assert "kernels do not import" in result.stderr and "Check the wheel's torch/CUDA/Python tags" in result.stderr


def test_skip_flash_attn_installs_none_and_says_the_actor_runs_on_sdpa(setup_sh, tmp_path):
    result = setup_sh("--venv", "--skip-flash-attn", "--skip-server")
    assert result.returncode == 0, result.stderr
    assert flash_attn_installs(tmp_path) == [] and "deltal_server" not in "\n".join(calls(tmp_path))
    assert "attention: no flash-attn (--skip-flash-attn / --flash-attn=sdpa)" in result.stdout


def test_no_prebuilt_wheel_for_this_platform_says_so_and_offers_both_choices(setup_sh):
    result = setup_sh("--dry-run", "--venv", arch="aarch64")
    assert result.returncode == 0, result.stderr
    line = plan_line(result.stdout, "flash-attn")
    assert "none (no prebuilt flash-attn wheel for torch 2.11 + CUDA 13.0 + Python 3.12 on aarch64)" in line
    assert "SDPA attention without remove-padding" in line
    assert "FLASH_ATTN_WHEEL=<a wheel for torch 2.11 + CUDA 13.0 + Python 3.12>" in line
    assert "--flash-attn=compile" in line


# ------------------------------------------------------------------ the compile, only when asked


def test_compile_uses_pips_nvcc_and_flash_attns_memory_aware_job_count(setup_sh, tmp_path):
    pip_nvcc = tmp_path / "site-packages" / "nvidia" / "cu13" / "bin" / "nvcc"
    _executable(pip_nvcc, FAKE_NVCC)
    result = setup_sh("--venv", "--skip-server", "--flash-attn=compile", nvcc=False)
    assert result.returncode == 0, result.stderr
    assert f"compiling flash-attn 2.8.3.post2 with {pip_nvcc} (CUDA 13.0) for sm_90 only" in result.stdout
    assert "flash-attn's own memory-aware default" in result.stdout
    (build,) = [line for line in pip_calls(tmp_path) if "install -v" in line]
    assert "flash-attn==2.8.3.post2" in build
    assert (
        f"MAX_JOBS= FLASH_ATTN_CUDA_ARCHS=90 CUDA_HOME={pip_nvcc.parent.parent} FLASH_ATTENTION_FORCE_BUILD=TRUE"
        in (build)
    )


def test_compile_honours_the_users_max_jobs_and_arch_list(setup_sh, tmp_path):
    result = setup_sh("--venv", "--skip-server", "--flash-attn=compile", MAX_JOBS="4", FLASH_ATTN_CUDA_ARCHS="80;90")
    assert result.returncode == 0, result.stderr
    assert "for sm_80;90 only, MAX_JOBS=4 (yours)" in result.stdout
    (build,) = [line for line in pip_calls(tmp_path) if "install -v" in line]
    assert "MAX_JOBS=4 FLASH_ATTN_CUDA_ARCHS=80;90" in build


@pytest.mark.parametrize(
    ("nvcc", "env", "message"),
    [
        (False, {}, "--flash-attn=compile needs nvcc, and there is none"),
        (True, {"FAKE_NVCC_RELEASE": "12.4"}, "is CUDA 12.4 while torch is built for CUDA 13.0"),
        (True, {"FAKE_CAP": "7.0"}, "compute capability (7.0) is not one flash-attn 2 builds for"),
    ],
)
def test_a_compile_that_cannot_work_stops_with_the_alternatives(setup_sh, tmp_path, nvcc, env, message):
    result = setup_sh("--venv", "--skip-server", "--flash-attn=compile", nvcc=nvcc, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "FLASH_ATTN_WHEEL=" in result.stderr and "--flash-attn=sdpa" in result.stderr
    assert not any("install -v" in line for line in pip_calls(tmp_path)), "no build was started"


# ------------------------------------------------------------------ time limits, conda, re-runs, options


def test_a_step_that_hangs_is_stopped_with_what_to_check(setup_sh, tmp_path):
    # The first download (pip's own upgrade) hangs; the limit (every step's) leaves the env creation time to finish.
    result = setup_sh(
        "--venv", "--skip-server", FAKE_PIP_SLEEP="120", FAKE_PIP_SLEEP_ON="--upgrade", SETUP_STEP_TIMEOUT="8"
    )
    assert result.returncode == 2
    assert "setup.sh: upgrading pip did not finish within 8 s" in result.stderr
    assert "check that this node reaches pypi.org" in result.stderr and "SETUP_STEP_TIMEOUT=<seconds>" in result.stderr
    assert not any("install -q -r" in line for line in pip_calls(tmp_path)), "nothing runs after the stopped step"


def test_ctrl_c_stops_setup_and_the_step_it_was_running(setup_sh, tmp_path):
    process = setup_sh("--venv", "--skip-server", FAKE_PIP_SLEEP="60", background=True)
    sleeping = tmp_path / "calls.log.sleeping"
    deadline = time.monotonic() + 60
    while not sleeping.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    pip_pid = int(sleeping.read_text())
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "setup.sh: interrupted while installing the CUDA 13.0 stack" in stderr
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):
        os.kill(pip_pid, 0)


def test_conda_envs_come_from_conda_forge_so_no_terms_of_service_prompt_can_stop_them(setup_sh, tmp_path):
    result = setup_sh(conda=True)
    assert result.returncode == 0, result.stderr
    creates = [line for line in calls(tmp_path) if line.startswith("conda create")]
    assert creates == [
        f"conda create -y -q -n {name} --override-channels -c conda-forge python=3.12"
        for name in ("deltal", "deltal_server")
    ]
    assert "conda activate deltal" in result.stdout
    assert "conda run -n deltal_server --no-capture-output bash server/math/start.sh" in result.stdout


def test_gpu_path_is_idempotent_and_skips_what_is_there(setup_sh, tmp_path):
    assert setup_sh("--venv").returncode == 0
    (tmp_path / "calls.log").unlink()
    result = setup_sh("--venv")
    assert result.returncode == 0, result.stderr
    assert not any(" -m venv " in line for line in calls(tmp_path)), "existing envs must be reused"
    assert flash_attn_installs(tmp_path) == [], "working flash-attn kernels must not be installed again"
    assert "flash-attn already installed" in result.stdout


def test_cpu_path_installs_torch_then_deltal_and_its_dry_run_installs_nothing(setup_sh, tmp_path):
    # The path CI runs for real; here only its order and its words.
    result = setup_sh("--cpu", "--dry-run", VENV=str(tmp_path / "cpu-venv"))
    assert result.returncode == 0 and "would create" in result.stdout and calls(tmp_path) == []
    result = setup_sh("--cpu", VENV=str(tmp_path / "cpu-venv"))
    assert result.returncode == 0, result.stderr
    installs = [line.split(" [")[0] for line in pip_calls(tmp_path)]
    venv_python = str(tmp_path / "cpu-venv" / "bin" / "python")
    assert installs == [
        f"{venv_python} -m pip install -q --upgrade pip",
        f"{venv_python} -m pip install -q torch==2.13.0",
        f"{venv_python} -m pip install -q -e .[test,server,trl]",
    ]
    assert "CPU environment ready" in result.stdout


def test_unknown_option_exits_2_naming_the_valid_ones(setup_sh):
    result = setup_sh("--gpu-please")
    assert result.returncode == 2
    assert (
        "--cpu" in result.stderr
        and "--dry-run" in result.stderr
        and "--flash-attn=prebuilt|sdpa|compile" in result.stderr
    )


def test_help_describes_both_paths_the_cuda_choice_and_the_flash_attn_knobs(setup_sh):
    result = setup_sh("--help")
    assert result.returncode == 0
    for text in ("bash setup.sh --cpu", "--dry-run", "deltal_server", "CUDA=13.0|12.9", "FLASH_ATTN_WHEEL"):
        assert text in result.stdout
    assert "SKIP_DRIVER_CHECK" in result.stdout and "SETUP_STEP_TIMEOUT" in result.stdout
