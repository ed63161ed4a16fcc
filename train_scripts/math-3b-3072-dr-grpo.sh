#!/usr/bin/env bash
# Math, Qwen2.5-3B, max response length 3072, 3 epochs: Dr. GRPO (the paper's run).
# Launch: bash train_scripts/math-3b-3072-dr-grpo.sh [extra hydra overrides]
# SETTINGS=paper: the paper's Appendix A.2 values; knobs and the parity table: train_scripts/README.md.
set -xeuo pipefail

TASK=math
MODEL=qwen2.5-3b
RUN_METHOD=dr_grpo
SETTINGS=paper
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen2.5-3B}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-3072}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-3}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

"$DELTAL_PYTHON" -m deltal.train \
  method=dr_grpo \
  "${DELTAL_OVERRIDES[@]}" \
  "$@"
