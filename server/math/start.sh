#!/usr/bin/env bash
# Start deltal's LaTeX-equivalence server (FastAPI + uvicorn, math-verify in killable worker processes).
#   bash server/math/start.sh                 # 127.0.0.1:6284, one checker process per CPU
#   MATH_SERVER_WORKERS=8 MATH_SERVER_TIMEOUT=5 bash server/math/start.sh
# Knobs (environment): MATH_SERVER_HOST, MATH_SERVER_PORT, MATH_SERVER_WORKERS, MATH_SERVER_TIMEOUT (hard per-check
# seconds) and the others listed in server/math/README.md. PYTHON picks the interpreter of the server's environment.
# Extra arguments go to uvicorn. Binds loopback by default: the endpoint is unauthenticated and CPU-heavy.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

PYTHON="${PYTHON:-python3}"
HOST="${MATH_SERVER_HOST:-127.0.0.1}"
PORT="${MATH_SERVER_PORT:-6284}"
export MATH_SERVER_WORKERS="${MATH_SERVER_WORKERS:-$(nproc)}"
export MATH_SERVER_TIMEOUT="${MATH_SERVER_TIMEOUT:-5}"
# gmpy2 work cannot be interrupted by math-verify's alarms and can abort a worker; keep sympy on pure Python.
export SYMPY_GROUND_TYPES=python

if ! "$PYTHON" -c "import math_verify, pebble, fastapi, uvicorn" 2>/dev/null; then
  echo "start.sh: $PYTHON lacks the server's packages; run: $PYTHON -m pip install -r $HERE/requirements.txt" >&2
  exit 1
fi

# One uvicorn process: the checker pool inside it owns the parallelism (MATH_SERVER_WORKERS).
exec "$PYTHON" -m uvicorn math_server:app --app-dir "$HERE" --host "$HOST" --port "$PORT" --workers 1 \
  --timeout-keep-alive 30 --limit-concurrency 256 --log-level "${MATH_SERVER_LOG_LEVEL:-info}" "$@"
