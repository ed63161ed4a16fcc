# Shared settings of every GPU launch script, sourced by train_scripts/*.sh and recipe/dapo/*.sh.
#
# Not run on its own. A launch script first fixes what its name says (TASK, MODEL, RUN_METHOD, SETTINGS and the
# defaults of BASE_MODEL, ROLLOUT_TP_SIZE, and for paper runs MAX_RESPONSE_LENGTH and the training budget), sources
# this file, then runs
#     "$DELTAL_PYTHON" -m deltal.train <method overrides> "${DELTAL_OVERRIDES[@]}" "$@"
#
# SETTINGS picks the defaults (the naming rule of train_scripts/README.md, where the parity table gives the source
# and the reason of each value):
#   reference       a script named like one of the reference repository's train_scripts/: its settings
#   reference-dapo  a script named like one of the reference repository's recipe/dapo/: its settings
#   paper           a script whose name carries the response length ({task}-{model}-{3072|8192}-{method}.sh):
#                   the paper's Appendix A.2 run
# Every knob is an environment variable with a default; train_scripts/README.md describes each one.
# The method-derived keys (algorithm.adv_estimator, actor.loss_agg_mode, actor.loss_scale_factor,
# algorithm.norm_adv_by_std_in_grpo) are deliberately absent: deltal derives them from method=<name>.

: "${TASK:?set TASK (countdown or math) before sourcing common.sh}"
: "${MODEL:?set MODEL (e.g. qwen2.5-3b) before sourcing common.sh}"
: "${RUN_METHOD:?set RUN_METHOD (e.g. delta_l_alpha_1) before sourcing common.sh}"
: "${SETTINGS:?set SETTINGS (reference, reference-dapo or paper) before sourcing common.sh}"

DELTAL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

case "$TASK" in
  countdown | math) ;;
  *)
    echo "common.sh: unknown TASK='$TASK' (use countdown or math)" >&2
    exit 2
    ;;
esac

# --- defaults that differ between the reference's scripts and the paper (parity table) ---
case "$SETTINGS" in
  reference)
    : "${N_GPUS:=4}" "${MAX_RESPONSE_LENGTH:=8192}" "${TOTAL_EPOCHS:=15}" "${ROLLOUT_N:=10}"
    : "${GPU_MEMORY_UTILIZATION:=0.8}" "${OFFLOAD:=True}" "${VAL_BEFORE_TRAIN:=True}" "${TEST_FREQ:=50}"
    : "${CLIP_RATIO_C:=3.0}"
    # The reference's verl ran vLLM without CUDA graphs (enforce_eager) and seeded its engines with 0.
    : "${ENFORCE_EAGER:=True}" "${ROLLOUT_SEED:=0}"
    if [[ "$TASK" == math ]]; then : "${SAVE_FREQ:=2000}"; else : "${SAVE_FREQ:=1000}"; fi
    RUN_SUFFIX=-ref
    ;;
  reference-dapo)
    # 4 GPUs unless the recipe says 8 (the reference ran both soft-punishment recipes and Math wo-sp-wo-of on 8).
    : "${N_GPUS:=4}" "${MAX_RESPONSE_LENGTH:=3072}" "${ROLLOUT_N:=8}" "${GPU_MEMORY_UTILIZATION:=0.8}"
    : "${OFFLOAD:=True}" "${VAL_BEFORE_TRAIN:=False}" "${SAVE_FREQ:=1000}" "${CLIP_RATIO_C:=10.0}"
    : "${ENFORCE_EAGER:=True}" "${ROLLOUT_SEED:=0}"
    # Up to 3 x 128 prompts generated at once while dynamic sampling refills: verl 0.9.1's counterpart of the
    # reference's data.gen_batch_size = 3 x train batch (its v1 trainer forces gen_batch_size to 1 under DAPO).
    : "${MAX_INFLIGHT_GEN_BATCHES:=3}"
    if [[ "$TASK" == math ]]; then
      : "${TOTAL_EPOCHS:=15}" "${TEST_FREQ:=50}"
    else
      : "${TOTAL_EPOCHS:=1500}" "${TEST_FREQ:=25}"
    fi
    RUN_SUFFIX=-ref
    ;;
  paper)
    : "${MAX_RESPONSE_LENGTH:?a paper-run script sets MAX_RESPONSE_LENGTH}"
    : "${N_GPUS:=8}" "${ROLLOUT_N:=10}" "${OFFLOAD:=False}" "${VAL_BEFORE_TRAIN:=True}" "${TEST_FREQ:=50}"
    : "${SAVE_FREQ:=100}" "${CLIP_RATIO_C:=3.0}"
    # vLLM with CUDA graphs (verl's default): the paper gives no engine setting, and graphs only change speed.
    : "${ENFORCE_EAGER:=False}"
    # KV cache for 1280 responses of up to 8192 tokens needs the larger share (train_scripts/README.md, sizing).
    if ((MAX_RESPONSE_LENGTH > 4096)); then : "${GPU_MEMORY_UTILIZATION:=0.8}"; else : "${GPU_MEMORY_UTILIZATION:=0.6}"; fi
    RUN_SUFFIX=
    ;;
  *)
    echo "common.sh: unknown SETTINGS='$SETTINGS' (use reference, reference-dapo or paper)" >&2
    exit 2
    ;;
esac

# --- cluster ---
N_NODES=${N_NODES:-1}
ROLLOUT_TP_SIZE=${ROLLOUT_TP_SIZE:-1}
# The python that runs deltal.train (tests point it at a shim that records the overrides).
DELTAL_PYTHON=${DELTAL_PYTHON:-python3}
# vLLM rollout + FSDP2 training is the one supported path (train_scripts/README.md: engines).
if [[ -n "${ROLLOUT_NAME:-}" && "$ROLLOUT_NAME" != vllm ]]; then
  echo "common.sh: ROLLOUT_NAME=$ROLLOUT_NAME is not supported: deltal's launch scripts run vLLM rollouts with" \
    "FSDP2 training only (see train_scripts/README.md, engines). Unset ROLLOUT_NAME." >&2
  exit 2
fi
# Attention of the FSDP actor: flash_attention_2 with remove-padding (sequence packing), or torch's SDPA without
# it when flash-attn cannot serve (not installed, or kernels that do not import with this torch): verl's default
# needs working flash-attn kernels at model load. deltal.attention_kernels is the same test setup.sh and preflight use.
ATTN_IMPL=${ATTN_IMPL:-auto}
if [[ "$ATTN_IMPL" == auto ]]; then
  if FLASH_ATTN_PROBLEM=$("$DELTAL_PYTHON" -m deltal.attention_kernels 2>&1); then
    ATTN_IMPL=flash_attention_2
  else
    ATTN_IMPL=sdpa
    echo "common.sh: ${FLASH_ATTN_PROBLEM##*$'\n'}: the actor uses SDPA attention without remove-padding" \
      "(slower, same results; docs/gpu-setup.md)" >&2
  fi
fi
case "$ATTN_IMPL" in
  flash_attention_2) USE_REMOVE_PADDING=True ;;
  sdpa) USE_REMOVE_PADDING=False ;;
  *)
    echo "common.sh: unknown ATTN_IMPL='$ATTN_IMPL' (use auto, flash_attention_2 or sdpa)" >&2
    exit 2
    ;;
esac

# --- model and data ---
BASE_MODEL=${BASE_MODEL:?the launch script sets BASE_MODEL}
DATA_ROOT=${DATA_ROOT:-$HOME/data/deltal}
DATA_DIR=${DATA_DIR:-$DATA_ROOT/$TASK}
if [[ "$TASK" == math ]]; then
  MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-1024}
else
  MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-256}
fi
# Same text as deltal.data.rl_format.RAW_PROMPT_CHAT_TEMPLATE (a test keeps them equal): base models get the
# prompt verbatim, with no chat markup around it.
RAW_PROMPT_CHAT_TEMPLATE='{% for message in messages %}{{ message.content }}{% endfor %}'

# --- optimisation (paper Appendix A.2) ---
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-128}   # prompts per step
MINI_BATCH_SIZE=${MINI_BATCH_SIZE:-32}      # prompts per optimizer step: 4 updates per training step
LR=${LR:-1e-6}
CLIP_RATIO_LOW=${CLIP_RATIO_LOW:-0.2}
CLIP_RATIO_HIGH=${CLIP_RATIO_HIGH:-0.3}
TEMPERATURE=${TEMPERATURE:-1.0}
# Tokens per GPU in one dynamic micro-batch; two full-length sequences by default.
PPO_MAX_TOKEN_LEN=${PPO_MAX_TOKEN_LEN:-$(((MAX_PROMPT_LENGTH + MAX_RESPONSE_LENGTH) * 2))}
# CountDown paper runs end after TOTAL_TRAINING_STEPS (the epoch count is only an upper bound); the others count epochs.
TOTAL_TRAINING_STEPS=${TOTAL_TRAINING_STEPS:-null}
TOTAL_EPOCHS=${TOTAL_EPOCHS:-10000}
MAX_INFLIGHT_GEN_BATCHES=${MAX_INFLIGHT_GEN_BATCHES:-1}
# vLLM sequences per replica: enough for every response of the prompts in flight in one wave (verl's default of
# 256 leaves 7B at TP 2 on 8 GPUs with 4 replicas x 256 = 1024 slots for 1280 responses).
ROLLOUT_REPLICAS=$((N_GPUS * N_NODES / ROLLOUT_TP_SIZE))
if ((ROLLOUT_REPLICAS < 1)); then
  echo "common.sh: ROLLOUT_TP_SIZE=$ROLLOUT_TP_SIZE exceeds the $((N_GPUS * N_NODES)) GPUs of the run" >&2
  exit 2
fi
WAVE=$(((TRAIN_BATCH_SIZE * MAX_INFLIGHT_GEN_BATCHES * ROLLOUT_N + ROLLOUT_REPLICAS - 1) / ROLLOUT_REPLICAS))
MAX_NUM_SEQS=${MAX_NUM_SEQS:-$((WAVE > 256 ? WAVE : 256))}

# --- evaluation: Avg@8 at temperature 1 ---
VAL_N=${VAL_N:-8}
VAL_TEMPERATURE=${VAL_TEMPERATURE:-1.0}

# --- run bookkeeping ---
SEED=${SEED:-1}
# vLLM's sampling seed; verl 0.9.1 gives replica r the seed ROLLOUT_SEED + r (reference runs: 0, the reference's).
ROLLOUT_SEED=${ROLLOUT_SEED:-$SEED}
PROJECT_NAME=${PROJECT_NAME:-deltal}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-${TASK}__${RUN_METHOD}__${MODEL}-len${MAX_RESPONSE_LENGTH}${RUN_SUFFIX}__seed${SEED}}
# Checkpoints are large (about 37 GB per save for 3B, 90 GB for 7B: fp32 weights + Adam state), so they go to a
# scratch disk outside the repository.
SCRATCH_DIR=${SCRATCH_DIR:-$HOME/scratch/deltal}
CKPT_DIR=${CKPT_DIR:-$SCRATCH_DIR/checkpoints}
MAX_CKPT_TO_KEEP=${MAX_CKPT_TO_KEEP:-2}
# verl's file logger (metrics as JSON lines) and W&B offline runs write here; deltal.train.run_logging forwards it to Ray.
LOG_DIR=${LOG_DIR:-$DELTAL_REPO/outputs/logs}
export VERL_FILE_LOGGER_ROOT=${VERL_FILE_LOGGER_ROOT:-$LOG_DIR}
export WANDB_DIR=${WANDB_DIR:-$LOG_DIR}
# Every validation sample (prompt, response, acc, data_source) as <step>.jsonl, one folder per run: verl's logged
# best@8 is a bootstrap estimate biased low, so exact Pass@8 is computed from these files
# (python -m deltal.analysis export ... --generations RUN=DIR).
VAL_GENERATIONS_DIR=${VAL_GENERATIONS_DIR:-$LOG_DIR/$PROJECT_NAME/$EXPERIMENT_NAME/val_generations}

# --- several nodes: join the Ray cluster started with `ray start` (ray.init reads RAY_ADDRESS) ---
if ((N_NODES > 1)) && [[ -z "${RAY_ADDRESS:-}" ]]; then
  echo "common.sh: N_NODES=$N_NODES needs a running Ray cluster. Run 'ray start --head' on the first node," \
    "'ray start --address=<head-ip>:6379' on the others, then export RAY_ADDRESS=<head-ip>:6379." >&2
  exit 2
fi

DELTAL_OVERRIDES=(
  data.train_batch_size="$TRAIN_BATCH_SIZE"
  data.max_prompt_length="$MAX_PROMPT_LENGTH"
  data.max_response_length="$MAX_RESPONSE_LENGTH"
  data.filter_overlong_prompts=True
  data.truncation=error
  data.seed="$SEED"
  actor_rollout_ref.model.path="$BASE_MODEL"
  "actor_rollout_ref.model.custom_chat_template='$RAW_PROMPT_CHAT_TEMPLATE'"
  actor_rollout_ref.model.use_remove_padding="$USE_REMOVE_PADDING"
  ++actor_rollout_ref.model.override_config.attn_implementation="$ATTN_IMPL"
  actor_rollout_ref.model.enable_gradient_checkpointing=True
  actor_rollout_ref.actor.strategy=fsdp2
  actor_rollout_ref.actor.fsdp_config.param_offload="$OFFLOAD"
  actor_rollout_ref.actor.fsdp_config.optimizer_offload="$OFFLOAD"
  actor_rollout_ref.ref.fsdp_config.param_offload="$OFFLOAD"
  actor_rollout_ref.actor.optim.lr="$LR"
  actor_rollout_ref.actor.ppo_mini_batch_size="$MINI_BATCH_SIZE"
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$PPO_MAX_TOKEN_LEN"
  actor_rollout_ref.actor.clip_ratio_low="$CLIP_RATIO_LOW"
  actor_rollout_ref.actor.clip_ratio_high="$CLIP_RATIO_HIGH"
  actor_rollout_ref.actor.clip_ratio_c="$CLIP_RATIO_C"
  actor_rollout_ref.actor.use_kl_loss=False
  actor_rollout_ref.actor.entropy_coeff=0
  algorithm.use_kl_in_reward=False
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.n="$ROLLOUT_N"
  actor_rollout_ref.rollout.temperature="$TEMPERATURE"
  actor_rollout_ref.rollout.seed="$ROLLOUT_SEED"
  actor_rollout_ref.rollout.enforce_eager="$ENFORCE_EAGER"
  actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP_SIZE"
  actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION"
  actor_rollout_ref.rollout.max_num_seqs="$MAX_NUM_SEQS"
  actor_rollout_ref.rollout.val_kwargs.n="$VAL_N"
  actor_rollout_ref.rollout.val_kwargs.temperature="$VAL_TEMPERATURE"
  actor_rollout_ref.rollout.val_kwargs.do_sample=True
  actor_rollout_ref.rollout.val_kwargs.top_p=1.0
  actor_rollout_ref.rollout.val_kwargs.top_k=-1
  # deltal's reward dispatcher (by data_source); the coroutine form lets a reward worker send every math answer
  # in flight to the LaTeX-equivalence server as one batch.
  reward.custom_reward_function.path=pkg://deltal.rewards
  reward.custom_reward_function.name=compute_score_async
  trainer.n_gpus_per_node="$N_GPUS"
  trainer.nnodes="$N_NODES"
  trainer.total_training_steps="$TOTAL_TRAINING_STEPS"
  trainer.total_epochs="$TOTAL_EPOCHS"
  trainer.test_freq="$TEST_FREQ"
  trainer.val_before_train="$VAL_BEFORE_TRAIN"
  trainer.save_freq="$SAVE_FREQ"
  trainer.max_actor_ckpt_to_keep="$MAX_CKPT_TO_KEEP"
  trainer.default_local_dir="$CKPT_DIR/$PROJECT_NAME/$EXPERIMENT_NAME"
  trainer.project_name="$PROJECT_NAME"
  trainer.experiment_name="$EXPERIMENT_NAME"
  trainer.validation_data_dir="$VAL_GENERATIONS_DIR"
  "trainer.logger=[console,wandb,file]"
)

case "$TASK" in
  countdown)
    DELTAL_OVERRIDES+=(
      data.train_files="$DATA_DIR/train.parquet"
      data.val_files="$DATA_DIR/test.parquet"
    )
    ;;
  math)
    MATH_SERVER_URL=${MATH_SERVER_URL:-http://${MATH_SERVER_HOST:-127.0.0.1}:${MATH_SERVER_PORT:-6284}}
    export MATH_SERVER_URL
    DELTAL_OVERRIDES+=(
      data.train_files="$DATA_DIR/train.parquet"
      "data.val_files=[$DATA_DIR/math500.parquet,$DATA_DIR/aime2024.parquet,$DATA_DIR/amc.parquet,$DATA_DIR/minerva.parquet]"
      # Reward workers may run on any node: they read the server's address from their own environment.
      +ray_kwargs.ray_init.runtime_env.env_vars.MATH_SERVER_URL="$MATH_SERVER_URL"
    )
    ;;
esac
