#!/usr/bin/env bash
# Runs every test in the three environments, creating them first if needed:
#   .venv      Keras 3 / TensorFlow 2.21: the optimizers and examples (TFF tests skip there)
#   .venv-tff  tf.keras 2.14 / TFF 0.87: the optimizers again, and everything federated
#   .venv-jax  Keras 3 on JAX, no TensorFlow: the optimizer tests (those needing TensorFlow skip)
# The suites run at once (each is mostly one busy Python thread, and the machine has more than
# one core; .venv-tff's, the longest, in two halves: the federated tests and the rest), each into
# its own log in build/test-logs/ with its slowest tests listed; a suite's log is printed whole
# when it ends, so that their outputs do not interleave.
# Extra arguments go to every pytest run (e.g. -k adabelief).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_envs.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONDONTWRITEBYTECODE=1
LOGS=build/test-logs
mkdir -p "$LOGS"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/keras-optim-tests.XXXXXX")

declare -A suite=() title=()  # pid -> suite; suite -> heading
start_suite() {  # start_suite SUITE VENV HEADING [VAR=VALUE...] PYTEST_ARGS...: in the background
  local name=$1 venv=$2 log="$LOGS/$1.log"
  title[$name]=$3; shift 3
  local vars=()
  while [[ ${1:-} == *=* && ${1:-} != -* ]]; do vars+=("$1"); shift; done
  echo "[tests] ${title[$name]}: running (log: $log)"
  # Its own process group, so that stopping it stops what its tests started; its own temporary
  # folder, so that the suites never clean up each other's.
  set -m
  env ${vars[@]+"${vars[@]}"} "$venv/bin/python" -m pytest "$@" -p no:cacheprovider --durations=10 \
    --basetemp "$scratch/$name" ${EXTRA[@]+"${EXTRA[@]}"} >"$log" 2>&1 </dev/null &
  set +m
  suite[$!]=$name
}

stray_workers() {  # TFF worker_binary processes that outlived their Python (they hold stdout)
  pgrep -f "$PWD/.venv-tff/.*worker_binary"
}

stop_suites() {
  local pid
  for pid in "${!suite[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done
  wait
  stray_workers >/dev/null && pkill -f "$PWD/.venv-tff/.*worker_binary"
  rm -rf "$scratch"
}
trap 'stop_suites; echo "[tests] interrupted: the logs so far are in $LOGS/"; exit 130' INT TERM

EXTRA=("$@")
start_suite venv .venv "tests on Keras 3 (.venv)" tests
start_suite venv-tff .venv-tff "federated tests on tf.keras 2.14 + TFF 0.87 (.venv-tff)" tests/tff
start_suite venv-tff-rest .venv-tff "other tests on tf.keras 2.14 + TFF 0.87 (.venv-tff)" tests \
  --ignore=tests/tff
start_suite venv-jax .venv-jax "tests on Keras 3 + JAX (.venv-jax)" KERAS_BACKEND=jax \
  tests/optimizers tests/backends tests/test_packaging.py

status=0
while [ ${#suite[@]} -gt 0 ]; do
  code=0; wait -n -p pid "${!suite[@]}" || code=$?
  name=${suite[$pid]}; unset "suite[$pid]"
  echo "== ${title[$name]} =="
  cat "$LOGS/$name.log"
  [ $code -eq 0 ] || status=$code
done
trap - INT TERM
rm -rf "$scratch"
# A TFF worker_binary that outlived its Python holds our stdout open: none may remain.
if stray_workers >/dev/null; then
  echo "stray TFF worker_binary processes remain:"; pgrep -af "$PWD/.venv-tff/.*worker_binary"
  pkill -f "$PWD/.venv-tff/.*worker_binary"; status=1
fi
exit $status
