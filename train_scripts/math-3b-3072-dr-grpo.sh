#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072, 3 epochs: Dr. GRPO.
# Launch: bash train_scripts/math-3b-dr-grpo.sh [extra hydra overrides]
# Knobs (N_GPUS, DATA_DIR, SEED, ...) are in train_scripts/README.md; shared settings in train_scripts/common.sh.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dr_grpo
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dr_grpo \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
