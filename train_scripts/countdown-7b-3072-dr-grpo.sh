#!/usr/bin/env bash
# CountDown, Qwen2.5-7B, max response length 3072, 500 steps: Dr. GRPO (the paper's run).
# Launch: bash train_scripts/countdown-7b-3072-dr-grpo.sh [extra hydra overrides]
# SETTINGS=paper: the paper's Appendix A.2 values; knobs and the parity table: train_scripts/README.md.
set -xeuo pipefail

TASK=countdown
MODEL=qwen2.5-7b
RUN_METHOD=dr_grpo
SETTINGS=paper
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-7B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_TRAINING_STEPS=${TOTAL_TRAINING_STEPS:-500}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-2}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dr_grpo \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
