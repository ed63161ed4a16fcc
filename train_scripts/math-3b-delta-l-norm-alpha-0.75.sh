#!/usr/bin/env bash
# Math, Qwen2.5-3B: ΔL Normalization, α = 0.75, with the settings of the reference repository's script of the same
# name (max response length 8192, 15 epochs, 4 GPUs, offload; train_scripts/README.md, parity table).
# Launch: bash train_scripts/math-3b-delta-l-norm-alpha-0.75.sh [extra hydra overrides]
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=delta_l_alpha_0.75
SETTINGS=reference
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=delta_l \
  algorithm.grpopp_config.alpha=0.75 \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
