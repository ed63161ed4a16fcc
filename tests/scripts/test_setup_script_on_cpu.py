"""setup.sh's GPU path installs verl's pinned GPU stack, flash-attn, deltal (held to the pins) and the math server's
own environment, is idempotent, and ends by printing the next commands; its options and CPU path stay intact.

The GPU path runs against a stand-in interpreter that records every call instead of installing anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SETUP = REPO / "setup.sh"

FAKE_PYTHON = r"""#!/usr/bin/env bash
# Records its command line; `-m venv DIR` makes DIR/bin/python a copy of itself.
echo "$0 $*" >> "$SETUP_LOG"
if [[ "$1 $2" == "-m venv" ]]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi
if [[ "$1" == "-c" ]]; then
  case "$2" in
    *"import flash_attn"*) [[ -n "${FAKE_HAS_FLASH_ATTN:-}" ]] && exit 0 || exit 1 ;;
    *"import deltal.verl_adapter.plugin"*) echo "setup.sh: verl 0.9.1, vllm 0.24.0 in deltal" ;;
  esac
  exit 0
fi
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == "-c" ]]; then echo "CONSTRAINTS: $(tr '\n' ' ' < "${args[i+1]}")" >> "$SETUP_LOG"; fi
done
"""


def run_setup(tmp_path: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "fake_python"
    if not fake.exists():
        fake.write_text(FAKE_PYTHON)
        fake.chmod(0o755)
    # PATH without conda, so the venv branch is taken unless --venv is given anyway.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHON": str(fake),
        "ENV_ROOT": str(tmp_path / "envs"),
        "SETUP_LOG": str(tmp_path / "calls.log"),
        **env_extra,
    }
    return subprocess.run(["bash", str(SETUP), *args], cwd=tmp_path, env=env, capture_output=True, text=True)


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_gpu_path_installs_pins_flash_attn_deltal_and_server_env(tmp_path):
    result = run_setup(tmp_path, "--venv")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    train_py, server_py = str(tmp_path / "envs/deltal/bin/python"), str(tmp_path / "envs/deltal_server/bin/python")
    train_calls = [line for line in log if line.startswith(train_py)]
    server_calls = [line for line in log if line.startswith(server_py)]

    assert any("pip install -q -r requirements.txt" in line for line in train_calls)
    assert any("--no-build-isolation flash-attn==2.8.3" in line for line in train_calls)
    deltal_install = [line for line in train_calls if "-e .[test]" in line]
    assert len(deltal_install) == 1 and " -c " in deltal_install[0]
    constraints = next(line for line in log if line.startswith("CONSTRAINTS:"))
    assert "verl==0.9.1" in constraints and "torch==2.11.0" in constraints and "[" not in constraints
    # Order matters: torch and the pins before flash-attn's build, deltal last.
    order = [
        i for i, line in enumerate(train_calls) if "requirements.txt" in line or "flash-attn" in line or "-e ." in line
    ]
    assert order == sorted(order) and len(order) == 3
    assert any("pip install -q -r server/math/requirements.txt" in line for line in server_calls)
    assert "next:" in result.stdout and "bash train_scripts/countdown-3b-delta-l-norm-alpha-1.sh" in result.stdout
    assert f"PYTHON={tmp_path / 'envs'}/deltal_server/bin/python bash server/math/start.sh" in result.stdout


def test_gpu_path_is_idempotent_and_skips_what_is_there(tmp_path):
    assert run_setup(tmp_path, "--venv").returncode == 0
    (tmp_path / "calls.log").unlink()
    result = run_setup(tmp_path, "--venv", FAKE_HAS_FLASH_ATTN="1")
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    assert not any(" -m venv " in line for line in log), "existing envs must be reused"
    assert not any("flash-attn==" in line for line in log), "an importable flash_attn must not be rebuilt"


def test_skip_options_leave_out_flash_attn_and_the_server_env(tmp_path):
    result = run_setup(tmp_path, "--venv", "--skip-flash-attn", "--skip-server")
    assert result.returncode == 0, result.stderr
    log = "\n".join(calls(tmp_path))
    assert "flash-attn" not in log and "deltal_server" not in log


def test_unknown_option_exits_2_naming_the_valid_ones(tmp_path):
    result = run_setup(tmp_path, "--gpu-please")
    assert result.returncode == 2
    assert "--cpu" in result.stderr and "--skip-flash-attn" in result.stderr


def test_help_describes_both_paths(tmp_path):
    result = run_setup(tmp_path, "--help")
    assert result.returncode == 0
    assert "bash setup.sh --cpu" in result.stdout and "deltal_server" in result.stdout
