#!/usr/bin/env bash
# Runs every test in the three environments, creating them first if needed:
#   .venv      Keras 3 / TensorFlow 2.21: the optimizers and examples (TFF tests skip there)
#   .venv-tff  tf.keras 2.14 / TFF 0.87: the optimizers again, and everything federated
#   .venv-jax  Keras 3 on JAX, no TensorFlow: the optimizer tests (those needing TensorFlow skip)
# Extra arguments go to every pytest run (e.g. -k adabelief).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_envs.sh || exit 1
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2} PYTHONDONTWRITEBYTECODE=1
status=0
echo "== tests on Keras 3 (.venv) =="
.venv/bin/python -m pytest tests -p no:cacheprovider "$@" || status=$?
echo "== tests on tf.keras 2.14 + TFF 0.87 (.venv-tff) =="
.venv-tff/bin/python -m pytest tests -p no:cacheprovider "$@" || status=$?
echo "== tests on Keras 3 + JAX (.venv-jax) =="
KERAS_BACKEND=jax .venv-jax/bin/python -m pytest tests/optimizers tests/backends tests/test_packaging.py \
  -p no:cacheprovider "$@" || status=$?
# A TFF worker_binary that outlived its Python holds our stdout open: none may remain.
if pgrep -f "$PWD/.venv-tff/.*worker_binary" >/dev/null; then
  echo "stray TFF worker_binary processes remain:"; pgrep -af "$PWD/.venv-tff/.*worker_binary"
  pkill -f "$PWD/.venv-tff/.*worker_binary"; status=1
fi
exit $status
