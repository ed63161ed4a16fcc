#!/usr/bin/env bash
# CountDown, Qwen2.5-3B: Dr. GRPO Norm, with the settings of the reference repository's script of the same
# name (max response length 8192, 15 epochs, 4 GPUs, offload; train_scripts/README.md, parity table).
# Launch: bash train_scripts/countdown-3b-dr-grpo-norm.sh [extra hydra overrides]
set -xeuo pipefail

TASK=countdown
MODEL=qwen2.5-3b
RUN_METHOD=dr_grpo_norm
SETTINGS=reference
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dr_grpo_norm \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
