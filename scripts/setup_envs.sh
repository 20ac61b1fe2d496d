#!/usr/bin/env bash
# Creates (or completes) the project's three virtual environments from nothing:
#   .venv      tensorflow 2.21 + keras 3 + tensorflow-datasets  (users of the optimizers)
#   .venv-tff  tensorflow 2.14.1 + tensorflow-federated 0.87.0  (TFF simulations; tf.keras 2.14)
#   .venv-jax  keras 3 + jax (CPU), no TensorFlow               (Keras 3 on JAX; KERAS_BACKEND=jax)
# Idempotent: an environment whose requirements have not changed since it was built is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

pip_quiet() {  # pip, without the registry mirror's noise about absent local folders
  { "$@" 2>&1; } | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

build_env() {  # build_env DIR REQS [NODEPS_REQS]
  local dir=$1 reqs=$2 nodeps=${3:-}
  local stamp="$dir/.requirements.sha" want
  want=$(cat "$reqs" ${nodeps:+"$nodeps"} setup.py | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "[setup] $dir is up to date"; return
  fi
  echo "[setup] building $dir from $reqs"
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  pip_quiet "$dir/bin/python" -m pip install -q --upgrade pip
  pip_quiet "$dir/bin/python" -m pip install -q -r "$reqs"
  # TFF's own metadata pins jax 0.4.14, which is no longer served: its real needs are in $reqs.
  [ -z "$nodeps" ] || pip_quiet "$dir/bin/python" -m pip install -q --no-deps -r "$nodeps"
  pip_quiet "$dir/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
}

build_env .venv requirements/keras3.txt
build_env .venv-tff requirements/tff.txt requirements/tff-nodeps.txt
build_env .venv-jax requirements/jax.txt
bash scripts/fetch_data.sh
