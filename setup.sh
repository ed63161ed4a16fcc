#!/usr/bin/env bash
# Set up deltal's environment.
#   bash setup.sh             GPU cluster: env `deltal` (verl 0.9.1 + vLLM + torch built for this node's NVIDIA driver,
#                             flash-attn from a prebuilt wheel when one fits, deltal) and env `deltal_server` (the math
#                             server's own stack); conda envs when conda exists, else venvs in ./.envs/.
#                             Nothing compiles.
#   bash setup.sh --dry-run   print what the GPU set-up would install on this node; install nothing
#   bash setup.sh --cpu       CPU-only venv in ./.venv (laptops, CI): torch CPU + verl[verl-core] + deltal[test,server,trl]
# GPU options: --venv (venvs even when conda exists), --skip-server, --flash-attn=prebuilt|sdpa|compile (prebuilt, the
# default: a prebuilt wheel when one exists for this torch/CUDA/Python, else SDPA attention; sdpa: no flash-attn;
# compile: build it from source, needs nvcc, honours MAX_JOBS), --skip-flash-attn (= --flash-attn=sdpa).
# Env: CUDA=13.0|12.9 (the build line; default: the newest this node's driver runs, see docs/gpu-setup.md),
# FLASH_ATTN_WHEEL (a flash-attn wheel file or URL to install instead of the prebuilt one), PYTHON (base interpreter,
# 3.10-3.12), ENV_NAME (deltal), SERVER_ENV_NAME (deltal_server), ENV_ROOT (./.envs), CONDA_CHANNEL (conda-forge),
# SKIP_DRIVER_CHECK=1 (install a build this node's driver cannot run, e.g. for other nodes), SETUP_STEP_TIMEOUT
# (seconds allowed to every download or install step), FLASH_ATTN_CUDA_ARCHS and MAX_JOBS (compile only).
# Idempotent: re-running reuses the envs and only installs what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

MODE="gpu"
DRY_RUN=0
USE_CONDA="auto"
FLASH_ATTN_MODE="prebuilt"
SERVER_ENV=1
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE="cpu" ;;
    --dry-run) DRY_RUN=1 ;;
    --venv) USE_CONDA=0 ;;
    --skip-flash-attn) FLASH_ATTN_MODE="sdpa" ;;
    --flash-attn=prebuilt | --flash-attn=sdpa | --flash-attn=compile) FLASH_ATTN_MODE="${arg#--flash-attn=}" ;;
    --skip-server) SERVER_ENV=0 ;;
    -h | --help)
      awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
      exit 0
      ;;
    *)
      echo "setup.sh: unknown option '$arg' (use --cpu, --dry-run, --venv, --flash-attn=prebuilt|sdpa|compile," \
        "--skip-flash-attn, --skip-server)" >&2
      exit 2
      ;;
  esac
done

PYTHON="${PYTHON:-python3}"

# ------------------------------------------------------------------ steps with a time limit
# Seconds a step may take before setup.sh stops it; SETUP_STEP_TIMEOUT replaces every one of them.
TIMEOUT_ENV_S=900      # create a conda env or venv
TIMEOUT_INSTALL_S=3600 # download and install a package set (the GPU stack is about 5 GB)
TIMEOUT_WHEEL_S=900    # download one wheel
TIMEOUT_COMPILE_S=14400

# run_limited WHAT WHERE SECONDS CMD...: run CMD under a time limit; on a timeout say what was running and which hosts
# (WHERE, empty for a local step) to check. Returns CMD's status (124 after a timeout).
run_limited() {
  local what="$1" where="$2" limit="${SETUP_STEP_TIMEOUT:-$3}" rc=0 pid
  shift 3
  # timeout leads a process group of its own (CMD and whatever CMD starts): it stops all of it at the limit, and
  # Ctrl-C, which reaches setup.sh, stops that group too. The trap is set before the step starts, so a Ctrl-C that
  # comes before `pid=$!` runs (a loaded machine) still stops the group: a background job's pid is its group's id.
  trap 'for job in $(jobs -p); do kill -TERM -- "-$job" 2>/dev/null; done
        echo "setup.sh: interrupted while $what" >&2; exit 130' INT TERM
  timeout -k 30 "$limit" "$@" &
  pid=$!
  wait "$pid" || rc=$?
  trap - INT TERM
  if ((rc == 124 || rc == 137)) && [[ -z "$where" ]]; then
    echo "setup.sh: $what did not finish within $limit s; allow more time with SETUP_STEP_TIMEOUT=<seconds>." >&2
  elif ((rc == 124 || rc == 137)); then
    echo "setup.sh: $what did not finish within $limit s. A slow or filtered network is the usual cause: check that" \
      "this node reaches $where (behind a proxy, export HTTPS_PROXY), or allow more time with" \
      "SETUP_STEP_TIMEOUT=<seconds>. Rerunning setup.sh keeps what is already installed." >&2
  elif ((rc != 0)); then
    echo "setup.sh: $what failed (exit $rc); the lines above say why." >&2
  fi
  return "$rc"
}

# step WHAT WHERE SECONDS CMD...: run_limited, and stop setup.sh when the step fails.
step() {
  run_limited "$@" || exit 2
}

# ------------------------------------------------------------------ CPU
if [[ "$MODE" == "cpu" ]]; then
  VENV="${VENV:-.venv}"
  if ((DRY_RUN)); then
    echo "setup.sh --cpu --dry-run: would create $VENV (if missing) with $PYTHON, then install torch==2.13.0" \
      "${TORCH_INDEX_URL:+from $TORCH_INDEX_URL }and deltal[test,server,trl] with verl[verl-core]==0.9.1 from PyPI"
    exit 0
  fi
  [[ -x "$VENV/bin/python" ]] || step "creating $VENV" "" "$TIMEOUT_ENV_S" "$PYTHON" -m venv "$VENV"
  step "upgrading pip" "pypi.org" "$TIMEOUT_INSTALL_S" "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first and pinned: a bare `torch` resolves to a multi-GB CUDA wheel. On a laptop, point
  # TORCH_INDEX_URL at PyTorch's CPU wheel index to get the CPU build of this version.
  step "installing torch 2.13.0" "pypi.org${TORCH_INDEX_URL:+ and $TORCH_INDEX_URL}" "$TIMEOUT_INSTALL_S" \
    "$VENV/bin/python" -m pip install -q "torch==2.13.0" ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"}
  step "installing deltal[test,server,trl]" "pypi.org" "$TIMEOUT_INSTALL_S" \
    "$VENV/bin/python" -m pip install -q -e ".[test,server,trl]"
  echo "setup.sh: CPU environment ready in $VENV"
  echo "next: bash train_scripts/quickstart-cpu.sh     # or: $VENV/bin/python -m pytest -q"
  exit 0
fi

# ------------------------------------------------------------------ GPU cluster: what this node needs
ENV_NAME="${ENV_NAME:-deltal}"
SERVER_ENV_NAME="${SERVER_ENV_NAME:-deltal_server}"
ENV_ROOT="${ENV_ROOT:-.envs}"
# verl 0.9.1 supports Python 3.10-3.12; vLLM's and the prebuilt flash-attn wheels cover these too.
CONDA_PYTHON_VERSION="${CONDA_PYTHON_VERSION:-3.12}"
# conda-forge needs no terms-of-service acceptance, so a non-interactive create cannot stop on that prompt (recent
# conda asks for Anaconda's default channels); --override-channels keeps those out.
CONDA_CHANNEL="${CONDA_CHANNEL:-conda-forge}"
CONDA_BIN="$(type -P conda || echo "${CONDA_EXE:-}")"
if [[ "$USE_CONDA" == "auto" ]]; then
  if [[ -n "$CONDA_BIN" ]]; then USE_CONDA=1; else USE_CONDA=0; fi
fi

# The CUDA lines deltal installs, newest first: the oldest NVIDIA driver that runs each (CUDA minor-version
# compatibility), its requirements file, and the CUDA tag of the prebuilt flash-attn wheel that runs with it
# (cu128 kernels load under the 12.9 runtime). Sources and reasons: docs/gpu-setup.md.
CUDA_LINES=(13.0 12.9)
declare -A MIN_DRIVER=([13.0]=580.65.06 [12.9]=525.60.13)
declare -A LINE_REQUIREMENTS=([13.0]=requirements.txt [12.9]=requirements-cu129.txt)
declare -A FLASH_ATTN_PREBUILT_CUDA=([13.0]=cu130 [12.9]=cu128)
# Prebuilt flash-attn 2.8.3 (verl 0.9.1's pin) for torch 2.11, Linux x86_64, CPython 3.10-3.12: a community build
# (mjun0812/flash-attention-prebuild-wheels, release v0.9.4); flash-attn's own releases have none for torch 2.11.
FLASH_ATTN_PREBUILT_URL="https://github.com/mjun0812/flash-attention-prebuild-wheels/releases/download/v0.9.4"
FLASH_ATTN_PREBUILT_VERSION=2.8.3
# From source (--flash-attn=compile): 2.8.3.post2 is verl's 2.8.3 plus a fix of 32-bit offsets in the backward
# kernels (dq accumulator).
FLASH_ATTN_SOURCE_VERSION=2.8.3.post2
# The oldest glibc with a wheel for every package of the stack: vLLM 0.24 requires llguidance 1.7, whose Linux wheels
# are manylinux_2_31; with an older glibc (RHEL 8: 2.28) pip builds it from its Rust sources.
MIN_GLIBC_WHEELS=2.31
GLIBC="$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }' || true)"
SDPA_NOTE="the actor then runs on SDPA attention without remove-padding (ATTN_IMPL=auto): same results, slower"
SDPA_NOTE+=" actor updates (docs/gpu-setup.md: cost)"

# version_at_least A B: dotted version A >= B, compared number by number.
version_at_least() {
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

DRIVER="" # this node's NVIDIA driver version; empty when none answers
GPU_CAP=""
NODE=""
detect_driver() {
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    NODE="no NVIDIA driver here (nvidia-smi not found)"
    return
  fi
  local out
  out=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
  if [[ "$out" =~ ^[0-9]+\.[0-9.]+$ ]]; then
    DRIVER="$out"
    GPU_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 || true)
    NODE="NVIDIA driver $DRIVER, GPU compute capability ${GPU_CAP:-unknown}"
    return
  fi
  # nvidia-smi lists no GPU (a login node, or GPUs hidden from this shell); the driver may still give its version.
  DRIVER=$(nvidia-smi --version 2>/dev/null | sed -n 's/^DRIVER version *: *\([0-9][0-9.]*\).*/\1/p' |
    head -n 1 || true)
  if [[ -n "$DRIVER" ]]; then
    NODE="NVIDIA driver $DRIVER, but no GPU visible here (a login node?)"
  else
    NODE="nvidia-smi is here but reaches no driver and no GPU (a login node?)"
  fi
}

LINE=""
LINE_REASON=""
choose_cuda_line() {
  local line
  if [[ -n "${CUDA:-}" ]]; then
    case "$CUDA" in
      13 | 13.0) LINE=13.0 ;;
      12 | 12.[0-9]) LINE=12.9 ;;
      *)
        echo "setup.sh: CUDA=$CUDA is not a line deltal installs: use CUDA=13.0 (driver >= ${MIN_DRIVER[13.0]})" \
          "or CUDA=12.9 (any CUDA 12 driver >= ${MIN_DRIVER[12.9]})." >&2
        exit 2
        ;;
    esac
    LINE_REASON="CUDA=$CUDA"
    if [[ "$CUDA" != "$LINE" ]]; then
      LINE_REASON+=": vLLM publishes CUDA 12 builds for 12.9 only, and they run on every CUDA 12 driver"
    fi
  elif [[ -n "$DRIVER" ]]; then
    for line in "${CUDA_LINES[@]}"; do
      if version_at_least "$DRIVER" "${MIN_DRIVER[$line]}"; then
        LINE="$line"
        break
      fi
    done
    if [[ -z "$LINE" ]]; then
      echo "setup.sh: NVIDIA driver $DRIVER is older than every build deltal installs (CUDA 12.9 needs >=" \
        "${MIN_DRIVER[12.9]}, CUDA 13.0 >= ${MIN_DRIVER[13.0]}). Upgrade the driver; to install for other nodes" \
        "anyway, set SKIP_DRIVER_CHECK=1 and CUDA=12.9 or CUDA=13.0." >&2
      exit 2
    fi
    LINE_REASON="the newest build driver $DRIVER runs"
    [[ "$LINE" == 13.0 ]] || LINE_REASON+="; CUDA 13.0 needs >= ${MIN_DRIVER[13.0]}"
  else
    LINE=12.9
    LINE_REASON="no driver to ask: the CUDA 12.9 build runs on every driver >= ${MIN_DRIVER[12.9]}, 580+ included;"
    LINE_REASON+=" CUDA=13.0 picks PyPI's CUDA 13 build"
  fi
  if [[ -n "$DRIVER" ]] && ! version_at_least "$DRIVER" "${MIN_DRIVER[$LINE]}"; then
    if [[ "${SKIP_DRIVER_CHECK:-0}" != 1 ]]; then
      echo "setup.sh: NVIDIA driver $DRIVER cannot run the CUDA $LINE build (it needs >= ${MIN_DRIVER[$LINE]})." \
        "Use CUDA=12.9, upgrade the driver, or set SKIP_DRIVER_CHECK=1 to install for other nodes anyway." >&2
      exit 2
    fi
    LINE_REASON+="; SKIP_DRIVER_CHECK=1: driver $DRIVER here cannot run it"
  fi
}

# env_python NAME: the path of env NAME's python, or nothing when the env does not exist.
env_python() {
  local name="$1"
  if [[ "$USE_CONDA" == 1 ]]; then
    "$CONDA_BIN" run -n "$name" python -c "import sys; print(sys.executable)" 2>/dev/null || true
  elif [[ -x "$ENV_ROOT/$name/bin/python" ]]; then
    echo "$(cd "$ENV_ROOT/$name" && pwd)/bin/python"
  fi
}

# python_version PY: "3.12" for interpreter PY.
python_version() {
  "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

TRAIN_PY="$(env_python "$ENV_NAME")"
if [[ -n "$TRAIN_PY" ]]; then
  PY_VERSION="$(python_version "$TRAIN_PY")"
elif [[ "$USE_CONDA" == 1 ]]; then
  PY_VERSION="$CONDA_PYTHON_VERSION"
else
  PY_VERSION="$(python_version "$PYTHON" 2>/dev/null || echo "none")"
fi
case "$PY_VERSION" in
  3.10 | 3.11 | 3.12) ;;
  *)
    echo "setup.sh: ${TRAIN_PY:-$PYTHON} is Python $PY_VERSION; verl 0.9.1 needs Python 3.10-3.12. Set" \
      "PYTHON=python3.12 (or CONDA_PYTHON_VERSION=3.12)." >&2
    exit 2
    ;;
esac
PY_TAG="cp${PY_VERSION/./}"

detect_driver
choose_cuda_line
REQUIREMENTS="${LINE_REQUIREMENTS[$LINE]}"
# Where this line's packages come from: PyPI and the extra indexes its requirements file names.
SOURCES="pypi.org$(sed -n 's/^--extra-index-url  *\(.*\)$/, \1/p' "$REQUIREMENTS" | tr -d '\n')"

# pins_of FILE: "name version" per pinned package; a file's own pins replace those of the file it includes.
pins_of() {
  local file="$1" included
  {
    while read -r included; do grep -v '^[[:space:]]*[#-]' "$included"; done < <(sed -n 's/^-r  *//p' "$file")
    grep -v '^[[:space:]]*[#-]' "$file"
  } | sed -n 's/^\([A-Za-z0-9_.-]*\)\(\[[^]]*\]\)\{0,1\}==\(.*\)$/\1 \3/p' |
    awk '!($1 in version) { order[n++] = $1 } { version[$1] = $2 }
      END { for (i = 0; i < n; i++) print order[i], version[order[i]] }'
}

# The flash-attn plan: wheel (FLASH_ATTN_WHEEL), prebuilt (with its URL), compile, or sdpa (with the reason).
FLASH_PLAN="$FLASH_ATTN_MODE"
FLASH_URL=""
FLASH_REASON=""
if [[ "$FLASH_ATTN_MODE" == sdpa ]]; then
  FLASH_REASON="--skip-flash-attn / --flash-attn=sdpa"
elif [[ -n "${FLASH_ATTN_WHEEL:-}" ]]; then
  FLASH_PLAN=wheel
elif [[ "$FLASH_ATTN_MODE" == prebuilt ]]; then
  ARCH="$(uname -m)"
  if [[ "$ARCH" == x86_64 ]]; then
    cuda_tag="${FLASH_ATTN_PREBUILT_CUDA[$LINE]}"
    wheel="flash_attn-$FLASH_ATTN_PREBUILT_VERSION+${cuda_tag}torch2.11-$PY_TAG-$PY_TAG-linux_x86_64.whl"
    FLASH_URL="$FLASH_ATTN_PREBUILT_URL/$wheel"
  else
    FLASH_PLAN=sdpa
    FLASH_REASON="no prebuilt flash-attn wheel for torch 2.11 + CUDA $LINE + Python $PY_VERSION on $ARCH"
  fi
fi

print_plan() {
  local header="$1" env_kind pins
  if [[ "$USE_CONDA" == 1 ]]; then env_kind="conda env (channel $CONDA_CHANNEL)"; else env_kind="venv in $ENV_ROOT/"; fi
  pins=$(pins_of "$REQUIREMENTS" | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
  echo "setup.sh: $header"
  echo "  node:        $NODE${GLIBC:+; glibc $GLIBC}"
  if [[ -n "$GLIBC" ]] && ! version_at_least "$GLIBC" "$MIN_GLIBC_WHEELS"; then
    echo "  note:        glibc $GLIBC is older than $MIN_GLIBC_WHEELS, the oldest with a wheel for vLLM's llguidance:" \
      "pip builds that one from source, which needs a Rust toolchain (rustup.rs); glibc $MIN_GLIBC_WHEELS+ (Ubuntu" \
      "20.04+, RHEL 9+) installs wheels only"
  fi
  echo "  CUDA line:   $LINE ($LINE_REASON)"
  echo "  env:         $ENV_NAME, $env_kind, Python $PY_VERSION${TRAIN_PY:+ (exists: $TRAIN_PY)}"
  echo "  packages:    $REQUIREMENTS: $pins"
  echo "  from:        $SOURCES"
  case "$FLASH_PLAN" in
    wheel) echo "  flash-attn:  the wheel you named, FLASH_ATTN_WHEEL=$FLASH_ATTN_WHEEL" ;;
    prebuilt)
      echo "  flash-attn:  prebuilt $FLASH_ATTN_PREBUILT_VERSION for torch 2.11 + ${FLASH_ATTN_PREBUILT_CUDA[$LINE]}" \
        "+ $PY_TAG (a community build, docs/gpu-setup.md): $FLASH_URL; if it cannot be installed, $SDPA_NOTE"
      ;;
    compile)
      echo "  flash-attn:  compiled from source ($FLASH_ATTN_SOURCE_VERSION, --flash-attn=compile), after checking nvcc"
      ;;
    sdpa)
      echo "  flash-attn:  none ($FLASH_REASON): $SDPA_NOTE. For flash-attn: FLASH_ATTN_WHEEL=<a wheel for torch" \
        "2.11 + CUDA $LINE + Python $PY_VERSION>, or --flash-attn=compile"
      ;;
  esac
  echo "  deltal:      pip install -e .[test,trl], held to the pins above"
  if [[ "$SERVER_ENV" == 1 ]]; then
    echo "  math server: env $SERVER_ENV_NAME with server/math/requirements.txt (from pypi.org)"
  fi
}

if ((DRY_RUN)); then
  print_plan "GPU set-up for this node (--dry-run: nothing is installed)"
  exit 0
fi
print_plan "GPU set-up for this node"

# ------------------------------------------------------------------ GPU cluster: install
# make_env NAME: create env NAME when missing; prints the path of its python.
make_env() {
  local name="$1" py
  py="$(env_python "$name")"
  if [[ -z "$py" ]]; then
    if [[ "$USE_CONDA" == 1 ]]; then
      step "creating conda env $name" "the $CONDA_CHANNEL channel" "$TIMEOUT_ENV_S" \
        "$CONDA_BIN" create -y -q -n "$name" --override-channels -c "$CONDA_CHANNEL" "python=$CONDA_PYTHON_VERSION" >&2
    else
      step "creating venv $ENV_ROOT/$name" "" "$TIMEOUT_ENV_S" "$PYTHON" -m venv "$ENV_ROOT/$name" >&2
    fi
    py="$(env_python "$name")"
  fi
  echo "$py"
}

# pip PY WHAT WHERE SECONDS ARGS...: one pip command of env PY as a step.
pip_step() {
  local py="$1" what="$2" where="$3" limit="$4"
  shift 4
  step "$what" "$where" "$limit" "$py" -m pip "$@"
}

# flash_attn_problem: empty when flash-attn's kernels import with the env's torch, else why not
# (deltal.attention_kernels: the one check setup.sh, the launch scripts and preflight share).
flash_attn_problem() {
  "$TRAIN_PY" -m deltal.attention_kernels 2>&1 >/dev/null | tail -n 1 || true
}

remove_flash_attn() {
  "$TRAIN_PY" -m pip uninstall -q -y flash-attn >/dev/null 2>&1 || true
}

FLASH_RESULT="" # flash: kernels import; otherwise the reason the actor runs on SDPA
install_flash_attn() {
  local problem
  problem="$(flash_attn_problem)"
  if [[ -z "$problem" ]]; then
    echo "setup.sh: flash-attn already installed; its kernels import with this torch"
    FLASH_RESULT=flash
    return
  fi
  if [[ "$FLASH_PLAN" == sdpa ]]; then
    FLASH_RESULT="$FLASH_REASON"
    return
  fi
  if [[ "$problem" != "flash-attn is not installed" ]]; then
    echo "setup.sh: $problem; removing it before installing flash-attn again"
    remove_flash_attn
  fi
  case "$FLASH_PLAN" in
    wheel)
      pip_step "$TRAIN_PY" "installing flash-attn from $FLASH_ATTN_WHEEL" "$FLASH_ATTN_WHEEL" "$TIMEOUT_WHEEL_S" \
        install -q --no-deps "$FLASH_ATTN_WHEEL"
      ;;
    prebuilt)
      echo "setup.sh: flash-attn: downloading the prebuilt wheel $FLASH_URL"
      if ! run_limited "downloading the prebuilt flash-attn wheel" "github.com" "$TIMEOUT_WHEEL_S" \
        "$TRAIN_PY" -m pip install -q --no-deps "$FLASH_URL"; then
        FLASH_RESULT="the prebuilt flash-attn wheel could not be installed, see above"
        return
      fi
      ;;
    compile) build_flash_attn ;;
  esac
  problem="$(flash_attn_problem)"
  if [[ -n "$problem" ]]; then
    remove_flash_attn
    if [[ "$FLASH_PLAN" == prebuilt ]]; then
      FLASH_RESULT="$problem, so it was removed"
      return
    fi
    echo "setup.sh: $problem; it was removed. Check the wheel's torch/CUDA/Python tags (torch 2.11, CUDA $LINE," \
      "$PY_TAG), or rerun with --skip-flash-attn." >&2
    exit 2
  fi
  echo "setup.sh: flash-attn installed; its kernels import with this torch"
  FLASH_RESULT=flash
}

# find_nvcc: a CUDA compiler for the compile: CUDA_HOME's, PATH's, else the one pip's CUDA packages put in the env
# (vLLM's dependencies pull nvidia-cuda-nvcc: nvidia/cu13/bin for CUDA 13, nvidia/cuda_nvcc/bin for CUDA 12).
find_nvcc() {
  local site candidate
  site="$("$TRAIN_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  for candidate in "${CUDA_HOME:+$CUDA_HOME/bin/nvcc}" "$(command -v nvcc || true)" \
    "$site/nvidia/cu13/bin/nvcc" "$site/nvidia/cuda_nvcc/bin/nvcc"; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return
    fi
  done
}

build_flash_attn() {
  local alternatives="or set FLASH_ATTN_WHEEL=<wheel file or URL for torch 2.11 + CUDA $LINE + $PY_TAG>, or rerun \
with --flash-attn=sdpa"
  local nvcc nvcc_release archs jobs
  nvcc="$(find_nvcc)"
  if [[ -z "$nvcc" ]]; then
    echo "setup.sh: --flash-attn=compile needs nvcc, and there is none (CUDA_HOME, PATH, the env's pip CUDA" \
      "packages): install the CUDA $LINE toolkit and set CUDA_HOME, $alternatives." >&2
    exit 2
  fi
  nvcc_release=$("$nvcc" -V | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
  if [[ "${nvcc_release%%.*}" != "${LINE%%.*}" ]]; then
    echo "setup.sh: $nvcc is CUDA ${nvcc_release:-unknown} while torch is built for CUDA $LINE: install the CUDA" \
      "${LINE%%.*} toolkit and set CUDA_HOME, $alternatives." >&2
    exit 2
  fi
  archs="${FLASH_ATTN_CUDA_ARCHS:-}"
  if [[ -z "$archs" ]]; then
    # flash-attn builds sm_80/90/100/120; a GPU of the same major version runs that code (8.6 and 8.9 run sm_80).
    case "${GPU_CAP%%.*}" in
      8) archs=80 ;;
      9) archs=90 ;;
      10) archs=100 ;;
      12) archs=120 ;;
      *)
        echo "setup.sh: the GPU's compute capability (${GPU_CAP:-no GPU visible}) is not one flash-attn 2 builds" \
          "for: set FLASH_ATTN_CUDA_ARCHS (80, 90, 100 or 120) for the training GPUs, $alternatives." >&2
        exit 2
        ;;
    esac
  fi
  if [[ -n "${MAX_JOBS:-}" ]]; then
    jobs="MAX_JOBS=$MAX_JOBS (yours)"
  else
    # flash-attn's build picks min(cores / 2, available GB / 9) when MAX_JOBS is unset: each job peaks near 9 GB.
    local avail_gb
    avail_gb=$(($(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo 2>/dev/null || echo 0) / 1048576))
    local by_memory=$((avail_gb / 9)) by_cores=$(($(nproc) / 2)) count
    count=$((by_memory < by_cores ? by_memory : by_cores))
    jobs="flash-attn's own memory-aware default: $((count > 1 ? count : 1)) job(s) for ${avail_gb} GB available"
    jobs+=" (set MAX_JOBS to choose)"
  fi
  echo "setup.sh: compiling flash-attn $FLASH_ATTN_SOURCE_VERSION with $nvcc (CUDA $nvcc_release) for sm_$archs" \
    "only, $jobs (72 CUDA files; compiler lines follow)"
  # --no-build-isolation builds against the installed torch, so the build tools must be in the env.
  pip_step "$TRAIN_PY" "installing flash-attn's build tools" "pypi.org" "$TIMEOUT_INSTALL_S" \
    install -q setuptools wheel packaging ninja psutil
  CUDA_HOME="$(dirname "$(dirname "$nvcc")")" FLASH_ATTENTION_FORCE_BUILD=TRUE FLASH_ATTN_CUDA_ARCHS="$archs" \
    step "compiling flash-attn" "pypi.org (the source archive)" "$TIMEOUT_COMPILE_S" \
    "$TRAIN_PY" -m pip install -v --no-cache-dir --no-build-isolation "flash-attn==$FLASH_ATTN_SOURCE_VERSION"
}

# The stack matches the chosen line: torch built for its CUDA major, and no library of the other CUDA major.
STACK_CHECK="$(
  cat <<'PY'
# deltal stack check
import importlib.metadata as metadata, sys
import torch
major = sys.argv[1].split(".")[0]
built = torch.version.cuda or "none"
if built.split(".")[0] != major:
    sys.exit(f"torch {torch.__version__} is built for CUDA {built}, not CUDA {sys.argv[1]}")
other = "cu13" if major == "12" else "cu12"
names = sorted({d.metadata["Name"] for d in metadata.distributions()
                if (d.metadata["Name"] or "").lower().endswith("-" + other)})
if names:
    sys.exit(f"CUDA {other[2:]} libraries beside a CUDA {major} torch: {', '.join(names)}")
print(f"torch {torch.__version__} (CUDA {built})")
PY
)"

TRAIN_PY="$(make_env "$ENV_NAME")"
pip_step "$TRAIN_PY" "upgrading pip" "pypi.org" "$TIMEOUT_INSTALL_S" install -q --upgrade pip
pip_step "$TRAIN_PY" "installing the CUDA $LINE stack ($REQUIREMENTS)" "$SOURCES" "$TIMEOUT_INSTALL_S" \
  install -q -r "$REQUIREMENTS"
if ! stack="$("$TRAIN_PY" -c "$STACK_CHECK" "$LINE" 2>&1)"; then
  echo "setup.sh: the environment does not hold the CUDA $LINE build: ${stack##*$'\n'}. Remove the env" \
    "($ENV_NAME) and rerun setup.sh, so that nothing of an earlier set-up stays." >&2
  exit 2
fi
echo "setup.sh: $stack"
install_flash_attn
# deltal on top, held to the versions above (constraints cannot carry extras, so they are stripped).
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
grep -v '^\s*#' requirements.txt | sed 's/\[[^]]*\]//' >"$CONSTRAINTS"
pip_step "$TRAIN_PY" "installing deltal" "pypi.org" "$TIMEOUT_INSTALL_S" install -q -e ".[test,trl]" -c "$CONSTRAINTS"
"$TRAIN_PY" -c "import deltal.verl_adapter.plugin, verl, vllm
print(f'setup.sh: verl {verl.__version__}, vllm {vllm.__version__} in $ENV_NAME')"

if [[ "$SERVER_ENV" == 1 ]]; then
  SERVER_PY="$(make_env "$SERVER_ENV_NAME")"
  pip_step "$SERVER_PY" "upgrading pip ($SERVER_ENV_NAME)" "pypi.org" "$TIMEOUT_INSTALL_S" install -q --upgrade pip
  pip_step "$SERVER_PY" "installing the math server's packages" "pypi.org" "$TIMEOUT_INSTALL_S" \
    install -q -r server/math/requirements.txt
  echo "setup.sh: math server environment ready: $SERVER_ENV_NAME"
fi

if [[ "$USE_CONDA" == 1 ]]; then
  ACTIVATE="conda activate $ENV_NAME"
  SERVER_START="conda run -n $SERVER_ENV_NAME --no-capture-output bash server/math/start.sh"
else
  ACTIVATE="source $ENV_ROOT/$ENV_NAME/bin/activate"
  SERVER_START="PYTHON=$ENV_ROOT/$SERVER_ENV_NAME/bin/python bash server/math/start.sh"
fi
if [[ "$FLASH_RESULT" == flash ]]; then
  echo "setup.sh: attention: flash-attn with remove-padding (ATTN_IMPL=auto picks it)"
else
  echo "setup.sh: attention: no flash-attn ($FLASH_RESULT): $SDPA_NOTE"
fi
cat <<EOF
setup.sh: GPU environment ready (CUDA $LINE build).
next:
  $ACTIVATE
  export WANDB_API_KEY=...                                  # optional: without it W&B runs offline
  python -m deltal.data.countdown --out ~/data/deltal/countdown --template base
  bash train_scripts/countdown-3b-3072-delta-l-norm-alpha-1.sh   # all scripts: train_scripts/README.md
  # Several nodes: run this set-up on every node (same envs, deltal installed): Ray places workers anywhere.
  # Math runs: build ~/data/deltal/math with python -m deltal.data.math, then keep the server running:
  $SERVER_START
EOF
