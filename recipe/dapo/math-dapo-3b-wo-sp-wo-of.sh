#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072 (paper section 4.3, Figure 9):
# full DAPO without soft punishment and without overlong filtering.
# SETTINGS=reference-dapo: the settings of the reference repository's recipe of the same name (dynamic sampling
# with up to 3 x 128 prompts in flight, 8 responses per prompt, clip 0.2 / 0.3, dual-clip 10, the dapo reward
# manager, offload); each difference is a row of the parity table in train_scripts/README.md.
# Launch: bash recipe/dapo/math-dapo-3b-wo-sp-wo-of.sh [extra hydra overrides]. Tested against verl 0.9.1.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dapo_wo_sp_wo_of
SETTINGS=reference-dapo
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# 8 GPUs, as the reference ran this recipe (its CountDown twin ran on 4; train_scripts/README.md, parity table).
N_GPUS=${N_GPUS:-8}
source "$(dirname "${BASH_SOURCE[0]}")/../../train_scripts/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  algorithm.filter_groups.enable=True \
  algorithm.filter_groups.metric=reward \
  algorithm.filter_groups.max_inflight_gen_batches="$MAX_INFLIGHT_GEN_BATCHES" \
  reward.reward_manager.name=dapo \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
