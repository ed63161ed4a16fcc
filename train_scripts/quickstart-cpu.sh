#!/usr/bin/env bash
# CPU quickstart: the whole verl pipeline (Ray, TransferQueue, agent-loop rollout, deltal's reward and ΔL advantage,
# FSDP2 actor update, validation) on a tiny local Qwen2 and easy CountDown, no GPU and no downloads.
#
#   bash setup.sh --cpu
#   bash train_scripts/quickstart-cpu.sh [METHOD] [hydra overrides...]
#
# METHOD: delta_l (default, α=1) | grpo_norm | dapo_norm | dr_grpo_norm | dr_grpo.
# Builds (and caches under .deltal/) the tokenizer + model, the dataset and a supervised warm start, then runs
# `python -m deltal.train backend=cpu method=METHOD` and ends with a summary line and a PNG of reward and
# response length over steps. Fits in ~10 minutes on 2 cores.
set -euo pipefail

METHOD=${1:-delta_l}
if [[ $# -gt 0 ]]; then shift; fi
case "$METHOD" in
  grpo_norm|dapo_norm|dr_grpo_norm|dr_grpo|delta_l) ;;
  *) echo "quickstart: unknown METHOD '$METHOD'; use one of grpo_norm dapo_norm dr_grpo_norm dr_grpo delta_l" >&2; exit 2 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
CACHE_DIR=${CACHE_DIR:-$REPO/.deltal}
SEED=${SEED:-0}
STEPS=${STEPS:-40}                  # RL steps
PROMPTS=${PROMPTS:-32}              # prompts per step
N=${N:-8}                           # responses per prompt
LR=${LR:-2e-4}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-24}
WARM_STEPS=${WARM_STEPS:-400}       # supervised warm-start steps (batch 64)
TRAIN_SIZE=${TRAIN_SIZE:-4096}
TEST_SIZE=${TEST_SIZE:-256}
RUN_NAME=${RUN_NAME:-countdown_easy__${METHOD}__tiny-qwen2__seed${SEED}}
RUN_DIR=${RUN_DIR:-$CACHE_DIR/runs/$RUN_NAME}

start_s=$SECONDS
ASSETS_DIR=$CACHE_DIR/assets/tiny-qwen2-seed$SEED
DATA_DIR=$CACHE_DIR/data/countdown_easy-seed$SEED
WARM_DIR=$CACHE_DIR/assets/tiny-qwen2-seed$SEED-warm$WARM_STEPS
RAY_TMP=$(mktemp -d "${TMPDIR:-/tmp}/deltal-ray.XXXXXX")   # short path: Ray's socket names must stay < 108 chars
trap 'rm -rf "$RAY_TMP"' EXIT

export VERL_PLATFORM=cpu
export RAY_AUTH_MODE=disabled
export HF_HOME=$CACHE_DIR/cache/hf
export HF_DATASETS_CACHE=$CACHE_DIR/cache/hf/datasets
export HF_HUB_OFFLINE=1
export VERL_FILE_LOGGER_PATH=$RUN_DIR/metrics.jsonl
mkdir -p "$RUN_DIR"

"$PYTHON" -m deltal.cpu.assets --out "$ASSETS_DIR" --seed "$SEED"
if [[ ! -f $DATA_DIR/train.parquet ]]; then
  "$PYTHON" -m deltal.data.countdown --variant easy --out "$DATA_DIR" \
    --train-size "$TRAIN_SIZE" --test-size "$TEST_SIZE" --seed "$SEED"
fi
"$PYTHON" -m deltal.cpu.warmstart --base "$ASSETS_DIR" --out "$WARM_DIR" \
  --exclude-parquet "$DATA_DIR/test.parquet" --steps "$WARM_STEPS" --seed "$SEED"

# bypass_mode: the old log-probs are the rollout's own. The CPU rollout samples from the actor's weights in the same
# precision and returns log-probs of the temperature-scaled, untruncated distribution, as verl's actor computes them
# (deltal/sampling.py), so verl's recompute gives the same numbers (tests/e2e checks the two agree); skipping it took
# a step from 4.09 to 2.64 s side by side on 2 cores (docs/cpu-step-profile.md, seventh round). The per-step
# `actor/entropy` came from that pass and is not logged. Pass algorithm.rollout_correction.bypass_mode=false after
# METHOD for verl's recompute.
"$PYTHON" -m deltal.train \
  backend=cpu \
  method="$METHOD" \
  algorithm.rollout_correction.bypass_mode=true \
  data.train_files="$DATA_DIR/train.parquet" \
  data.val_files="$DATA_DIR/test.parquet" \
  data.train_batch_size="$PROMPTS" \
  data.val_batch_size="$TEST_SIZE" \
  data.max_prompt_length=32 \
  data.max_response_length="$MAX_RESPONSE_LENGTH" \
  data.seed="$SEED" \
  actor_rollout_ref.model.path="$WARM_DIR" \
  actor_rollout_ref.rollout.n="$N" \
  actor_rollout_ref.rollout.temperature=1.0 \
  actor_rollout_ref.rollout.top_k=-1 \
  actor_rollout_ref.rollout.top_p=1.0 \
  actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=128 \
  actor_rollout_ref.actor.optim.lr="$LR" \
  actor_rollout_ref.actor.optim.weight_decay=0.0 \
  actor_rollout_ref.actor.ppo_mini_batch_size="$PROMPTS" \
  actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=128 \
  actor_rollout_ref.actor.ppo_epochs=1 \
  actor_rollout_ref.actor.entropy_coeff=0 \
  actor_rollout_ref.actor.use_kl_loss=false \
  algorithm.use_kl_in_reward=false \
  reward.custom_reward_function.path="$REPO/deltal/rewards/__init__.py" \
  reward.custom_reward_function.name=compute_score \
  trainer.logger='[console,file]' \
  trainer.project_name=deltal_quickstart_cpu \
  trainer.experiment_name="$RUN_NAME" \
  trainer.total_training_steps="$STEPS" \
  trainer.total_epochs=1000 \
  trainer.val_before_train=true \
  trainer.test_freq="$STEPS" \
  trainer.save_freq=-1 \
  trainer.resume_mode=disable \
  trainer.default_local_dir="$RUN_DIR/checkpoints" \
  +ray_kwargs.ray_init._temp_dir="$RAY_TMP" \
  "$@"

"$PYTHON" -m deltal.quickstart \
  --metrics "$VERL_FILE_LOGGER_PATH" \
  --plot "$RUN_DIR/curves.png" \
  --method "$METHOD" \
  --wall-s "$((SECONDS - start_s))"
