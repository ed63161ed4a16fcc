#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072, 3 epochs (paper section 4.3, Figure 9):
# full DAPO with soft overlong punishment over the last 2048 tokens.
# Launch: bash recipe/dapo/math-dapo-3b-w-soft-punishment.sh [extra hydra overrides]
# Knobs: train_scripts/README.md; shared settings: train_scripts/common.sh. Tested against verl 0.9.1.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dapo_w_soft_punishment
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# DAPO soft punishment: the reward falls linearly from 0 to -PENALTY_FACTOR over the last OVERLONG_BUFFER_LEN tokens.
OVERLONG_BUFFER_LEN=${OVERLONG_BUFFER_LEN:-2048}
OVERLONG_PENALTY_FACTOR=${OVERLONG_PENALTY_FACTOR:-1.0}
# Dynamic sampling: groups whose responses all score the same are dropped and refilled with new prompts.
MAX_INFLIGHT_GEN_BATCHES=${MAX_INFLIGHT_GEN_BATCHES:-1}
source "$(dirname "${BASH_SOURCE[0]}")/../../train_scripts/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=acc \
  algorithm.filter_groups.max_inflight_gen_batches="$MAX_INFLIGHT_GEN_BATCHES" \
  reward.reward_manager.name=dapo \
  +reward.reward_kwargs.max_resp_len='${data.max_response_length}' \
  +reward.reward_kwargs.overlong_buffer_cfg.enable=True \
  +reward.reward_kwargs.overlong_buffer_cfg.len="$OVERLONG_BUFFER_LEN" \
  +reward.reward_kwargs.overlong_buffer_cfg.penalty_factor="$OVERLONG_PENALTY_FACTOR" \
  +reward.reward_kwargs.overlong_buffer_cfg.log=True \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
