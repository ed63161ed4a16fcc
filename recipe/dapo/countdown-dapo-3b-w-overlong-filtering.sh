#!/usr/bin/env bash
# CountDown, Qwen2.5-3B, max response length 3072, 1000 steps (paper section 4.3, Figure 9):
# full DAPO with overlong filtering (responses that hit the length limit get advantage 0).
# Launch: bash recipe/dapo/countdown-dapo-3b-w-overlong-filtering.sh [extra hydra overrides]
# Knobs: train_scripts/README.md; shared settings: train_scripts/common.sh. Tested against verl 0.9.1.
set -xeuo pipefail

TASK=countdown
MODEL=qwen2.5-3b
RUN_METHOD=dapo_w_overlong_filtering
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_TRAINING_STEPS=${TOTAL_TRAINING_STEPS:-1000}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# Dynamic sampling: groups whose responses all score the same are dropped and refilled with new prompts.
MAX_INFLIGHT_GEN_BATCHES=${MAX_INFLIGHT_GEN_BATCHES:-1}
source "$(dirname "${BASH_SOURCE[0]}")/../../train_scripts/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=acc \
  algorithm.filter_groups.max_inflight_gen_batches="$MAX_INFLIGHT_GEN_BATCHES" \
  algorithm.filter_overlong_response.enable=True \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
