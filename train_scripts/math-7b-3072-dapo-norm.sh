#!/usr/bin/env bash
# Math, Qwen2.5-7B, max response length 3072, 1 epoch: DAPO Norm (the paper's run).
# Launch: bash train_scripts/math-7b-3072-dapo-norm.sh [extra hydra overrides]
# SETTINGS=paper: the paper's Appendix A.2 values; knobs and the parity table: train_scripts/README.md.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-7b
RUN_METHOD=dapo_norm
SETTINGS=paper
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-7B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-1}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-2}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dapo_norm \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
