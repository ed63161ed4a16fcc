"""setup.sh's GPU path checks the NVIDIA driver, installs verl's pinned GPU stack, then flash-attn from a prebuilt wheel
when one exists and otherwise compiles it for the local GPU only (after checking nvcc), or says how to go on without
it; then deltal (held to the pins) and the math server's own environment. It is idempotent and ends by printing the
next commands; its options and CPU path stay intact.

The GPU path runs against stand-ins on PATH: a `python` that records every call instead of installing anything (and
plays pip, torch and the flash-attn build), `nvidia-smi` and `nvcc` that report the versions a test chooses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "setup.sh"

FAKE_PYTHON = r"""#!/usr/bin/env bash
# Records its command line and the flash-attn build switches; `-m venv DIR` makes DIR/bin/python a copy of itself.
echo "$0 $* [SKIP=${FLASH_ATTENTION_SKIP_CUDA_BUILD:-} FORCE=${FLASH_ATTENTION_FORCE_BUILD:-}" \
  "ARCHS=${FLASH_ATTN_CUDA_ARCHS:-} CUDA_HOME=${CUDA_HOME:-}]" >> "$SETUP_LOG"
if [[ "$1 $2" == "-m venv" ]]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [[ "$1" == "-V" ]]; then echo "Python 3.12.3"; exit 0; fi
if [[ "$1" == "-c" ]]; then
  case "$2" in
    *flash_attn_2_cuda*) [[ -n "${FAKE_HAS_FLASH_ATTN:-}" || -e "$SETUP_LOG.kernels" ]] && exit 0 || exit 1 ;;
    *torch.version.cuda*) echo "13.0" ;;
    *"import deltal.verl_adapter.plugin"*) echo "setup.sh: verl 0.9.1, vllm 0.24.0 in deltal" ;;
  esac
  exit 0
fi
if [[ "$*" == *"flash_attn-"*".whl"* ]]; then touch "$SETUP_LOG.kernels"; fi
if [[ "$*" == *"flash-attn=="* ]]; then
  # The prebuilt lookup finds a wheel only when FAKE_PREBUILT is set; a forced build always yields the kernels.
  if [[ -n "${FAKE_PREBUILT:-}" || "${FLASH_ATTENTION_FORCE_BUILD:-}" == TRUE ]]; then touch "$SETUP_LOG.kernels"; fi
fi
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == "-c" ]]; then echo "CONSTRAINTS: $(tr '\n' ' ' < "${args[i+1]}")" >> "$SETUP_LOG"; fi
done
"""
FAKE_NVIDIA_SMI = r"""#!/usr/bin/env bash
case "$*" in
  *driver_version*) echo "$FAKE_DRIVER" ;;
  *compute_cap*) echo "$FAKE_CAP" ;;
esac
"""
FAKE_NVCC = r"""#!/usr/bin/env bash
echo "nvcc: NVIDIA (R) Cuda compiler driver"
echo "Cuda compilation tools, release ${FAKE_NVCC_RELEASE:-13.0}, V${FAKE_NVCC_RELEASE:-13.0}.48"
"""


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def run_setup(
    tmp_path: Path, *args: str, driver: str | None = "580.82.07", nvcc: bool = True, **env_extra: str
) -> subprocess.CompletedProcess:
    """Run setup.sh with the stand-ins; ``driver=None`` leaves nvidia-smi off PATH, ``nvcc=False`` leaves out nvcc."""
    fake = tmp_path / "fake_python"
    if not fake.exists():
        _executable(fake, FAKE_PYTHON)
    bin_dir = tmp_path / ("bin" + ("-smi" if driver else "") + ("-nvcc" if nvcc else ""))
    bin_dir.mkdir(exist_ok=True)
    if driver:
        _executable(bin_dir / "nvidia-smi", FAKE_NVIDIA_SMI)
    if nvcc:
        _executable(bin_dir / "nvcc", FAKE_NVCC)
    # PATH without conda, so the venv branch is taken unless --venv is given anyway.
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHON": str(fake),
        "ENV_ROOT": str(tmp_path / "envs"),
        "SETUP_LOG": str(tmp_path / "calls.log"),
        "FAKE_DRIVER": driver or "",
        "FAKE_CAP": "9.0",
        **env_extra,
    }
    return subprocess.run(["bash", str(SETUP), *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def flash_attn_installs(tmp_path: Path) -> list[str]:
    return [line for line in calls(tmp_path) if "pip install" in line and "flash-attn==" in line]


def test_gpu_path_installs_pins_prebuilt_flash_attn_deltal_and_server_env(tmp_path):
    result = run_setup(tmp_path, "--venv", FAKE_PREBUILT="1")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    train_py, server_py = str(tmp_path / "envs/deltal/bin/python"), str(tmp_path / "envs/deltal_server/bin/python")
    train_calls = [line for line in log if line.startswith(train_py)]
    server_calls = [line for line in log if line.startswith(server_py)]

    assert "NVIDIA driver 580.82.07, GPU compute capability 9.0" in result.stdout
    assert any("pip install -q -r requirements.txt" in line for line in train_calls)
    # The build tools a --no-build-isolation install needs, which a fresh venv lacks.
    assert any("pip install -q setuptools wheel packaging ninja psutil" in line for line in train_calls)
    (prebuilt,) = flash_attn_installs(tmp_path)
    assert "--no-build-isolation flash-attn==2.8.3.post2" in prebuilt and "[SKIP=TRUE FORCE=" in prebuilt
    deltal_install = [line for line in train_calls if "-e .[test,trl]" in line]
    assert len(deltal_install) == 1 and " -c " in deltal_install[0]
    constraints = next(line for line in log if line.startswith("CONSTRAINTS:"))
    assert "verl==0.9.1" in constraints and "torch==2.11.0" in constraints and "[" not in constraints
    # Order matters: torch and the pins before flash-attn, deltal last.
    order = [
        i
        for i, line in enumerate(train_calls)
        if "requirements.txt" in line or "flash-attn==" in line or "-e ." in line
    ]
    assert order == sorted(order) and len(order) == 3
    assert any("pip install -q -r server/math/requirements.txt" in line for line in server_calls)
    assert "next:" in result.stdout and "bash train_scripts/countdown-3b-3072-delta-l-norm-alpha-1.sh" in result.stdout
    assert f"PYTHON={tmp_path / 'envs'}/deltal_server/bin/python bash server/math/start.sh" in result.stdout


def test_without_a_prebuilt_wheel_flash_attn_is_compiled_for_the_local_gpu_only(tmp_path):
    result = run_setup(tmp_path, "--venv", "--skip-server", MAX_JOBS="4")
    assert result.returncode == 0, result.stderr
    prebuilt, build = flash_attn_installs(tmp_path)
    assert "[SKIP=TRUE" in prebuilt
    assert any("pip uninstall -q -y flash-attn" in line for line in calls(tmp_path)), "the kernel-less package goes"
    assert "pip install -v" in build and "FORCE=TRUE ARCHS=90 CUDA_HOME=" in build
    assert "compiling flash-attn 2.8.3.post2" in result.stdout and "for sm_90 only, MAX_JOBS=4" in result.stdout


def test_an_explicit_arch_list_and_wheel_are_used_as_given(tmp_path):
    result = run_setup(tmp_path, "--venv", "--skip-server", FLASH_ATTN_CUDA_ARCHS="80;90")
    assert result.returncode == 0, result.stderr
    assert "ARCHS=80;90 " in flash_attn_installs(tmp_path)[-1]

    other = tmp_path / "with_wheel"
    other.mkdir()
    result = run_setup(other, "--venv", "--skip-server", FLASH_ATTN_WHEEL="/wheels/flash_attn-2.8.3-cp312.whl")
    assert result.returncode == 0, result.stderr
    assert any("pip install -q /wheels/flash_attn-2.8.3-cp312.whl" in line for line in calls(other))
    assert not flash_attn_installs(other), "a given wheel replaces the lookup and the build"


@pytest.mark.parametrize(
    ("nvcc", "env", "message"),
    [
        (False, {}, "no nvcc to compile it"),
        (True, {"FAKE_NVCC_RELEASE": "12.4"}, "is CUDA 12.4 while torch is built for CUDA 13.0"),
        (True, {"FAKE_CAP": "7.0"}, "compute capability (7.0) is not one flash-attn 2 builds for"),
    ],
)
def test_a_build_that_cannot_work_stops_with_the_alternatives(tmp_path, nvcc, env, message):
    result = run_setup(tmp_path, "--venv", "--skip-server", nvcc=nvcc, **env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "FLASH_ATTN_WHEEL=" in result.stderr and "--skip-flash-attn" in result.stderr
    assert not any("FORCE=TRUE" in line for line in flash_attn_installs(tmp_path)), "no build was started"


def test_missing_driver_says_what_training_needs_and_still_installs(tmp_path):
    result = run_setup(tmp_path, "--venv", "--skip-server", driver=None, FAKE_PREBUILT="1")
    assert result.returncode == 0, result.stderr
    assert "no NVIDIA driver here (nvidia-smi not found)" in result.stderr
    assert "driver >= 580" in result.stderr and "bash setup.sh --cpu" in result.stderr


def test_old_driver_stops_before_installing_with_the_fix(tmp_path):
    result = run_setup(tmp_path, "--venv", driver="550.54.15")
    assert result.returncode == 2
    assert "NVIDIA driver 550.54.15 is too old for torch 2.11" in result.stderr
    assert "Upgrade the driver" in result.stderr and "SKIP_DRIVER_CHECK=1" in result.stderr
    assert not (tmp_path / "calls.log").exists()
    assert run_setup(tmp_path, "--venv", driver="550.54.15", SKIP_DRIVER_CHECK="1", FAKE_PREBUILT="1").returncode == 0


def test_gpu_path_is_idempotent_and_skips_what_is_there(tmp_path):
    assert run_setup(tmp_path, "--venv", FAKE_PREBUILT="1").returncode == 0
    (tmp_path / "calls.log").unlink()
    result = run_setup(tmp_path, "--venv", FAKE_HAS_FLASH_ATTN="1")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    assert not any(" -m venv " in line for line in log), "existing envs must be reused"
    assert not flash_attn_installs(tmp_path), "installed flash-attn kernels must not be rebuilt"
    assert "flash-attn already installed" in result.stdout


def test_skip_flash_attn_leaves_it_out_and_says_the_scripts_use_sdpa(tmp_path):
    result = run_setup(tmp_path, "--venv", "--skip-flash-attn", "--skip-server")
    assert result.returncode == 0, result.stderr
    log = "\n".join(calls(tmp_path))
    assert "flash-attn" not in log and "deltal_server" not in log
    assert "flash-attn skipped: the launch scripts run the actor with SDPA attention" in result.stdout


def test_unknown_option_exits_2_naming_the_valid_ones(tmp_path):
    result = run_setup(tmp_path, "--gpu-please")
    assert result.returncode == 2
    assert "--cpu" in result.stderr and "--skip-flash-attn" in result.stderr


def test_help_describes_both_paths_and_the_flash_attn_knobs(tmp_path):
    result = run_setup(tmp_path, "--help")
    assert result.returncode == 0
    assert "bash setup.sh --cpu" in result.stdout and "deltal_server" in result.stdout
    assert "FLASH_ATTN_WHEEL" in result.stdout and "SKIP_DRIVER_CHECK" in result.stdout


def test_cpu_path_installs_deltal_with_the_test_server_and_trl_extras(tmp_path):
    # CI runs `bash setup.sh --cpu` and then the whole suite, which includes tests/trl: TRL must be installed.
    result = run_setup(tmp_path, "--cpu", driver=None, VENV=str(tmp_path / "venv"))
    assert result.returncode == 0, result.stderr
    venv_py = str(tmp_path / "venv/bin/python")
    installs = [line for line in calls(tmp_path) if line.startswith(venv_py) and "pip install" in line]
    assert any("pip install -q torch==2.13.0" in line for line in installs)
    assert any("pip install -q -e .[test,server,trl]" in line for line in installs)
