#!/usr/bin/env bash
# CountDown, Qwen2.5-3B, max response length 3072, 1000 steps: DAPO Norm.
# Launch: bash train_scripts/countdown-3b-dapo-norm.sh [extra hydra overrides]
# Knobs (N_GPUS, DATA_DIR, SEED, ...) are in train_scripts/README.md; shared settings in train_scripts/common.sh.
set -xeuo pipefail

TASK=countdown
MODEL=qwen2.5-3b
RUN_METHOD=dapo_norm
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_TRAINING_STEPS=${TOTAL_TRAINING_STEPS:-1000}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
