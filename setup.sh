#!/usr/bin/env bash
# Set up deltal's environment.
#   bash setup.sh           GPU cluster: env `deltal` (verl 0.9.1 + vLLM + flash-attn + deltal) and env `deltal_server`
#                           (the math server's own stack); conda envs when conda exists, else venvs in ./.envs/
#   bash setup.sh --cpu     CPU-only venv in ./.venv (laptops, CI): torch CPU + verl[verl-core] + deltal[test,server,trl]
# GPU options: --venv (venvs even when conda exists), --skip-flash-attn (the launch scripts then use SDPA attention),
# --skip-server. Env: PYTHON (base interpreter, 3.10-3.12), ENV_NAME (deltal), SERVER_ENV_NAME (deltal_server),
# ENV_ROOT (./.envs), FLASH_ATTN_WHEEL (a flash-attn wheel file or URL for torch 2.11 + CUDA 13 + your Python),
# FLASH_ATTN_CUDA_ARCHS (build only: GPU architectures, default the local GPU's), MAX_JOBS (build parallelism),
# SKIP_DRIVER_CHECK=1 (install with an old NVIDIA driver, e.g. for other nodes).
# Idempotent: re-running reuses the envs and only installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

MODE="gpu"
USE_CONDA="auto"
FLASH_ATTN=1
SERVER_ENV=1
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE="cpu" ;;
    --venv) USE_CONDA=0 ;;
    --skip-flash-attn) FLASH_ATTN=0 ;;
    --skip-server) SERVER_ENV=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --cpu, --venv, --skip-flash-attn, --skip-server)" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

if [[ "$MODE" == "cpu" ]]; then
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: a bare `torch` resolves to a multi-GB CUDA wheel. On a laptop, point
  # TORCH_INDEX_URL at PyTorch's CPU wheel index to get the CPU build of this version.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
  "$VENV/bin/python" -m pip install -q -e ".[test,server,trl]"
  echo "setup.sh: CPU environment ready in $VENV"
  echo "next: bash train_scripts/quickstart-cpu.sh     # or: $VENV/bin/python -m pytest -q"
  exit 0
fi

# ---------------------------------------------------------------- GPU cluster
ENV_NAME="${ENV_NAME:-deltal}"
SERVER_ENV_NAME="${SERVER_ENV_NAME:-deltal_server}"
ENV_ROOT="${ENV_ROOT:-.envs}"
# verl 0.9.1 supports Python 3.10-3.12; vLLM's wheels are built for these too.
CONDA_PYTHON_VERSION="${CONDA_PYTHON_VERSION:-3.12}"

if [[ "$USE_CONDA" == "auto" ]]; then
  if command -v conda >/dev/null 2>&1; then USE_CONDA=1; else USE_CONDA=0; fi
fi
# torch 2.11 from PyPI is a CUDA 13.0 build: the NVIDIA driver must be a CUDA 13 one (>= 580).
MIN_DRIVER_MAJOR=580
GPU_CAP=""
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "setup.sh: no NVIDIA driver here (nvidia-smi not found). torch 2.11 is a CUDA 13 build: training needs NVIDIA" \
    "GPUs with driver >= $MIN_DRIVER_MAJOR. Installing the GPU stack anyway (e.g. on a login node); on a machine" \
    "that will never have GPUs use: bash setup.sh --cpu" >&2
else
  DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
  if [[ ! "$DRIVER" =~ ^[0-9]+\. ]]; then
    echo "setup.sh: nvidia-smi cannot reach the NVIDIA driver; fix the driver installation (nvidia-smi must list" \
      "the GPUs), then rerun." >&2
    exit 2
  fi
  GPU_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)
  if ((${DRIVER%%.*} < MIN_DRIVER_MAJOR)) && [[ "${SKIP_DRIVER_CHECK:-0}" != 1 ]]; then
    echo "setup.sh: NVIDIA driver $DRIVER is too old for torch 2.11 (a CUDA 13 build needs driver >=" \
      "$MIN_DRIVER_MAJOR). Upgrade the driver, or set SKIP_DRIVER_CHECK=1 to install for other nodes anyway." >&2
    exit 2
  fi
  echo "setup.sh: NVIDIA driver $DRIVER, GPU compute capability ${GPU_CAP:-unknown}"
fi

# make_env NAME -> prints the path of NAME's python, creating the env if it is missing.
make_env() {
  local name="$1"
  if [[ "$USE_CONDA" == 1 ]]; then
    if ! conda run -n "$name" python -c "" >/dev/null 2>&1; then
      conda create -y -q -n "$name" "python=$CONDA_PYTHON_VERSION" >&2
    fi
    conda run -n "$name" python -c "import sys; print(sys.executable)"
  else
    if [[ ! -x "$ENV_ROOT/$name/bin/python" ]]; then
      "$PYTHON" -c "import sys; assert (3, 10) <= sys.version_info[:2] <= (3, 12), sys.version" 2>/dev/null || {
        echo "setup.sh: $PYTHON is $("$PYTHON" -V 2>&1); verl 0.9.1 needs Python 3.10-3.12. Set PYTHON=python3.12." >&2
        exit 2
      }
      "$PYTHON" -m venv "$ENV_ROOT/$name" >&2
    fi
    echo "$(cd "$ENV_ROOT/$name" && pwd)/bin/python"
  fi
}

# flash-attn 2.8.3.post2: the release whose wheel lookup names CUDA 13 builds (2.8.3 looks for a `cu12` wheel under
# a CUDA 13 torch and then compiles). Its sources are verl 0.9.1's flash-attn-cu130torch211 pin (2.8.3) plus a fix of
# 32-bit index arithmetic in the backward kernels (dq accumulator offsets).
FLASH_ATTN_VERSION=2.8.3.post2

has_flash_kernels() {
  # The compiled extension, not just the Python package: a build without nvcc yields a package with no kernels.
  "$TRAIN_PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("flash_attn_2_cuda") is None)'
}

install_flash_attn() {
  if has_flash_kernels; then
    echo "setup.sh: flash-attn already installed"
    return
  fi
  # --no-build-isolation builds against the installed torch, so the build tools must be in the env (a fresh venv has
  # neither setuptools nor wheel).
  "$TRAIN_PY" -m pip install -q setuptools wheel packaging ninja psutil
  if [[ -n "${FLASH_ATTN_WHEEL:-}" ]]; then
    echo "setup.sh: flash-attn: installing $FLASH_ATTN_WHEEL"
    "$TRAIN_PY" -m pip install -q "$FLASH_ATTN_WHEEL"
  else
    # 1. A prebuilt wheel: flash-attn's setup.py downloads flash_attn-<version>+cu13torch2.11cxx11abiTRUE-<python>
    #    from its release page when one exists; SKIP_CUDA_BUILD lets it get there without nvcc or CUDA_HOME.
    echo "setup.sh: flash-attn: looking for a prebuilt $FLASH_ATTN_VERSION wheel for torch 2.11 + CUDA 13"
    FLASH_ATTENTION_SKIP_CUDA_BUILD=TRUE "$TRAIN_PY" -m pip install -q --no-cache-dir --no-build-isolation \
      "flash-attn==$FLASH_ATTN_VERSION" || true
    if ! has_flash_kernels; then
      # No wheel: setup.py fell back to a package without kernels. Remove it and compile for this GPU only.
      "$TRAIN_PY" -m pip uninstall -q -y flash-attn >/dev/null 2>&1 || true
      build_flash_attn
    fi
  fi
  if ! has_flash_kernels; then
    echo "setup.sh: flash-attn installed without its CUDA kernels (flash_attn_2_cuda); check the wheel's" \
      "torch/CUDA/Python tags, or rerun with --skip-flash-attn." >&2
    exit 2
  fi
  echo "setup.sh: flash-attn installed"
}

build_flash_attn() {
  local no_wheel="no prebuilt flash-attn wheel for torch 2.11 + CUDA 13 + $("$TRAIN_PY" -V 2>&1)"
  local alternatives="or set FLASH_ATTN_WHEEL=<wheel file or URL for your torch/CUDA/Python>, or rerun with \
--skip-flash-attn (the launch scripts then use SDPA attention)"
  local nvcc="${CUDA_HOME:+$CUDA_HOME/bin/nvcc}"
  [[ -n "$nvcc" && -x "$nvcc" ]] || nvcc=$(command -v nvcc || true)
  if [[ -z "$nvcc" ]]; then
    echo "setup.sh: $no_wheel, and no nvcc to compile it (the pip CUDA packages have none). Install the CUDA 13" \
      "toolkit and set CUDA_HOME, $alternatives." >&2
    exit 2
  fi
  local nvcc_release torch_cuda
  nvcc_release=$("$nvcc" -V | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  torch_cuda=$("$TRAIN_PY" -c "import torch; print(torch.version.cuda)")
  if [[ "${nvcc_release%%.*}" != "${torch_cuda%%.*}" ]]; then
    echo "setup.sh: $no_wheel, and $nvcc is CUDA ${nvcc_release:-unknown} while torch is built for CUDA" \
      "$torch_cuda: install the CUDA ${torch_cuda%%.*} toolkit and set CUDA_HOME, $alternatives." >&2
    exit 2
  fi
  local archs="${FLASH_ATTN_CUDA_ARCHS:-}"
  if [[ -z "$archs" ]]; then
    # flash-attn builds sm_80/90/100/120; a GPU of the same major version runs that code (8.6 and 8.9 run sm_80).
    case "${GPU_CAP%%.*}" in
      8) archs=80 ;;
      9) archs=90 ;;
      10) archs=100 ;;
      12) archs=120 ;;
      *)
        echo "setup.sh: $no_wheel, and the GPU's compute capability (${GPU_CAP:-no GPU visible}) is not one" \
          "flash-attn 2 builds for: set FLASH_ATTN_CUDA_ARCHS (80, 90, 100 or 120) for the training GPUs," \
          "$alternatives." >&2
        exit 2
        ;;
    esac
  fi
  echo "setup.sh: $no_wheel: compiling flash-attn $FLASH_ATTN_VERSION with $nvcc (CUDA $nvcc_release) for sm_$archs" \
    "only, MAX_JOBS=${MAX_JOBS:-8} (72 CUDA files; compiler lines follow)"
  CUDA_HOME="$(dirname "$(dirname "$nvcc")")" FLASH_ATTENTION_FORCE_BUILD=TRUE FLASH_ATTN_CUDA_ARCHS="$archs" \
    MAX_JOBS="${MAX_JOBS:-8}" "$TRAIN_PY" -m pip install -v --no-cache-dir --no-build-isolation \
    "flash-attn==$FLASH_ATTN_VERSION"
}

TRAIN_PY="$(make_env "$ENV_NAME")"
"$TRAIN_PY" -m pip install -q --upgrade pip
# The pins of verl 0.9.1's vllm extra (torch 2.11.0, vLLM 0.24.0, transformers 5.9.0); see requirements.txt.
"$TRAIN_PY" -m pip install -q -r requirements.txt
if [[ "$FLASH_ATTN" == 1 ]]; then
  install_flash_attn
fi
# deltal on top, held to the versions above (constraints cannot carry extras, so they are stripped).
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
grep -v '^\s*#' requirements.txt | sed 's/\[[^]]*\]//' >"$CONSTRAINTS"
"$TRAIN_PY" -m pip install -q -e ".[test,trl]" -c "$CONSTRAINTS"
"$TRAIN_PY" -c "import deltal.verl_adapter.plugin, verl, vllm; print(f'setup.sh: verl {verl.__version__}, vllm {vllm.__version__} in $ENV_NAME')"

if [[ "$SERVER_ENV" == 1 ]]; then
  SERVER_PY="$(make_env "$SERVER_ENV_NAME")"
  "$SERVER_PY" -m pip install -q --upgrade pip
  "$SERVER_PY" -m pip install -q -r server/math/requirements.txt
  echo "setup.sh: math server environment ready: $SERVER_ENV_NAME"
fi

if [[ "$USE_CONDA" == 1 ]]; then
  ACTIVATE="conda activate $ENV_NAME"
  SERVER_START="conda run -n $SERVER_ENV_NAME --no-capture-output bash server/math/start.sh"
else
  ACTIVATE="source $ENV_ROOT/$ENV_NAME/bin/activate"
  SERVER_START="PYTHON=$ENV_ROOT/$SERVER_ENV_NAME/bin/python bash server/math/start.sh"
fi
if [[ "$FLASH_ATTN" == 0 ]] && ! has_flash_kernels; then
  echo "setup.sh: flash-attn skipped: the launch scripts run the actor with SDPA attention and no remove-padding" \
    "(ATTN_IMPL=auto; slower, same results)"
fi
cat <<EOF
setup.sh: GPU environment ready.
next:
  $ACTIVATE
  export WANDB_API_KEY=...                                  # optional: without it W&B runs offline
  python -m deltal.data.countdown --out ~/data/deltal/countdown --template base
  bash train_scripts/countdown-3b-3072-delta-l-norm-alpha-1.sh   # all scripts: train_scripts/README.md
  # Several nodes: run this set-up on every node (same envs, deltal installed): Ray places workers anywhere.
  # Math runs: build ~/data/deltal/math with python -m deltal.data.math, then keep the server running:
  $SERVER_START
EOF
