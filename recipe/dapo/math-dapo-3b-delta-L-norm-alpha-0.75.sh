#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072, 3 epochs (paper section 4.3, Figure 9):
# dynamic sampling and clip-higher with ΔL Normalization, α = 0.75 (no overlong filtering, no soft punishment).
# Launch: bash recipe/dapo/math-dapo-3b-delta-L-norm-alpha-0.75.sh [extra hydra overrides]
# Knobs: train_scripts/README.md; shared settings: train_scripts/common.sh. Tested against verl 0.9.1.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dapo_delta_l_alpha_0.75
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# Dynamic sampling: groups whose responses all score the same are dropped and refilled with new prompts.
MAX_INFLIGHT_GEN_BATCHES=${MAX_INFLIGHT_GEN_BATCHES:-1}
source "$(dirname "${BASH_SOURCE[0]}")/../../train_scripts/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=delta_l \
  algorithm.grpopp_config.alpha=0.75 \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=acc \
  algorithm.filter_groups.max_inflight_gen_batches="$MAX_INFLIGHT_GEN_BATCHES" \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
