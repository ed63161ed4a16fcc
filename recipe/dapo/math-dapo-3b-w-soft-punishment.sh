#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072 (paper section 4.3, Figure 9):
# full DAPO with soft overlong punishment over the last 2048 tokens.
# SETTINGS=reference-dapo: the settings of the reference repository's recipe of the same name (dynamic sampling
# with up to 3 x 128 prompts in flight, 8 responses per prompt, clip 0.2 / 0.3, dual-clip 10, the dapo reward
# manager, offload); each difference is a row of the parity table in train_scripts/README.md.
# Launch: bash recipe/dapo/math-dapo-3b-w-soft-punishment.sh [extra hydra overrides]. Tested against verl 0.9.1.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dapo_w_soft_punishment
SETTINGS=reference-dapo
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# 8 GPUs, as the reference ran this recipe (train_scripts/README.md, parity table).
N_GPUS=${N_GPUS:-8}
# DAPO soft punishment: the reward falls linearly from 0 to -PENALTY_FACTOR over the last OVERLONG_BUFFER_LEN tokens.
OVERLONG_BUFFER_LEN=${OVERLONG_BUFFER_LEN:-2048}
OVERLONG_PENALTY_FACTOR=${OVERLONG_PENALTY_FACTOR:-1.0}
# True adds each response's overlong penalty to the logged reward extras; the reference left it off.
OVERLONG_LOG=${OVERLONG_LOG:-False}
source "$(dirname "${BASH_SOURCE[0]}")/../../train_scripts/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=reward \
  algorithm.filter_groups.max_inflight_gen_batches="$MAX_INFLIGHT_GEN_BATCHES" \
  reward.reward_manager.name=dapo \
  +reward.reward_kwargs.max_resp_len='${data.max_response_length}' \
  +reward.reward_kwargs.overlong_buffer_cfg.enable=True \
  +reward.reward_kwargs.overlong_buffer_cfg.len="$OVERLONG_BUFFER_LEN" \
  +reward.reward_kwargs.overlong_buffer_cfg.penalty_factor="$OVERLONG_PENALTY_FACTOR" \
  +reward.reward_kwargs.overlong_buffer_cfg.log="$OVERLONG_LOG" \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
