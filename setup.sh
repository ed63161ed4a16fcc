#!/usr/bin/env bash
# Set up deltal's environment.
#   bash setup.sh           GPU cluster: env `deltal` (verl 0.9.1 + vLLM + flash-attn + deltal) and env `deltal_server`
#                           (the math server's own stack); conda envs when conda exists, else venvs in ./.envs/
#   bash setup.sh --cpu     CPU-only venv in ./.venv (laptops, CI): torch CPU wheel + verl[verl-core] + deltal[test,server]
# GPU options: --venv (venvs even when conda exists), --skip-flash-attn, --skip-server. Env: PYTHON (base interpreter,
# 3.10-3.12), ENV_NAME (deltal), SERVER_ENV_NAME (deltal_server), ENV_ROOT (./.envs), MAX_JOBS (flash-attn build).
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
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
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
  "$VENV/bin/python" -m pip install -q -e ".[test,server]"
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
command -v nvidia-smi >/dev/null 2>&1 ||
  echo "setup.sh: warning: nvidia-smi not found; installing the GPU stack anyway (training needs CUDA GPUs)" >&2

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

TRAIN_PY="$(make_env "$ENV_NAME")"
"$TRAIN_PY" -m pip install -q --upgrade pip
# The pins of verl 0.9.1's vllm extra (torch 2.11.0, vLLM 0.24.0, transformers 5.9.0); see requirements.txt.
"$TRAIN_PY" -m pip install -q -r requirements.txt
if [[ "$FLASH_ATTN" == 1 ]] && ! "$TRAIN_PY" -c "import flash_attn" >/dev/null 2>&1; then
  # The pin of verl's flash-attn-cu130torch211 extra. Its build must see the installed torch (no build isolation):
  # it downloads the matching prebuilt wheel when one exists, else compiles (MAX_JOBS bounds the compiler's memory).
  MAX_JOBS="${MAX_JOBS:-8}" "$TRAIN_PY" -m pip install -q --no-build-isolation "flash-attn==2.8.3"
fi
# deltal on top, held to the versions above (constraints cannot carry extras, so they are stripped).
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
grep -v '^\s*#' requirements.txt | sed 's/\[[^]]*\]//' >"$CONSTRAINTS"
"$TRAIN_PY" -m pip install -q -e ".[test]" -c "$CONSTRAINTS"
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
cat <<EOF
setup.sh: GPU environment ready.
next:
  $ACTIVATE
  export WANDB_API_KEY=...                                  # optional: without it W&B runs offline
  python -m deltal.data.countdown --out ~/data/deltal/countdown --template base
  bash train_scripts/countdown-3b-delta-l-norm-alpha-1.sh   # all scripts: train_scripts/README.md
  # Math runs: build ~/data/deltal/math with python -m deltal.data.math, then keep the server running:
  $SERVER_START
EOF
