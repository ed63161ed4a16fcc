#!/usr/bin/env bash
# Set up deltal's environment.
#   bash setup.sh --cpu     CPU-only venv in ./.venv (laptops, CI): torch CPU wheel + verl[verl-core] + deltal[test,server]
# Idempotent: re-running reuses the venv and only installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

MODE="gpu"
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE="cpu" ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option '$arg' (use --cpu or nothing)" >&2; exit 2 ;;
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
echo "setup.sh: the GPU-cluster path is not written yet; use --cpu" >&2
exit 2
