#!/usr/bin/env bash
# Creates (or completes) the project's three virtual environments from nothing:
#   .venv      tensorflow 2.21 + keras 3 + tensorflow-datasets  (users of the optimizers)
#              + mkdocs, Material, mkdocstrings                 (the documentation site)
#   .venv-tff  tensorflow 2.14.1 + tensorflow-federated 0.87.0  (TFF simulations; tf.keras 2.14)
#   .venv-jax  keras 3 + jax (CPU), no TensorFlow               (Keras 3 on JAX; KERAS_BACKEND=jax)
# Idempotent: an environment whose requirements have not changed since it was built is left alone.
# The three are built at once (pip waits on the registry and the disk more than on the CPU), each
# writing its pip output to DIR/setup.log; the first that fails stops the others and is named.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3

pip_quiet() {  # pip, without the registry mirror's noise about absent local folders
  { "$@" 2>&1; } | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}

wanted_stamp() {  # wanted_stamp NODEPS_REQS REQS...: what the environment is built from
  cat "${@:2}" ${1:+"$1"} setup.py | sha256sum | cut -d' ' -f1
}

build_env() {  # build_env DIR NODEPS_REQS REQS...; its output goes to DIR/setup.log
  local dir=$1 nodeps=$2 req reqs=()
  for req in "${@:3}"; do reqs+=(-r "$req"); done
  [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
  pip_quiet "$dir/bin/python" -m pip install -q --upgrade pip
  pip_quiet "$dir/bin/python" -m pip install -q "${reqs[@]}"
  # TFF's own metadata pins jax 0.4.14, which is no longer served: its real needs are in REQS.
  [ -z "$nodeps" ] || pip_quiet "$dir/bin/python" -m pip install -q --no-deps -r "$nodeps"
  pip_quiet "$dir/bin/python" -m pip install -q --no-deps -e .
  wanted_stamp "${@:2}" > "$dir/.requirements.sha"
}

declare -A building=()  # pid -> environment directory
stop_builds() {
  local pid
  for pid in "${!building[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; done
}
trap 'stop_builds; exit 130' INT TERM

start_build() {  # start_build DIR NODEPS_REQS REQS...: in the background unless up to date
  # NODEPS_REQS ("" for none) is installed with --no-deps after REQS, which pip resolves at once.
  local dir=$1 stamp="$1/.requirements.sha"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(wanted_stamp "${@:2}")" ]; then
    echo "[setup] $dir is up to date"; return
  fi
  mkdir -p "$dir"
  echo "[setup] building $dir from ${*:3}${2:+ and $2} (log: $dir/setup.log)"
  # Its own process group, so that stopping it stops its pip too.
  set -m
  ( set +m; SECONDS=0; build_env "$@" >"$dir/setup.log" 2>&1
    echo "[setup] built in ${SECONDS}s" >>"$dir/setup.log" ) &
  set +m
  building[$!]=$dir
}

start_build .venv "" requirements/keras3.txt requirements/docs.txt
start_build .venv-tff requirements/tff-nodeps.txt requirements/tff.txt
start_build .venv-jax "" requirements/jax.txt
while [ ${#building[@]} -gt 0 ]; do
  status=0; wait -n -p done_pid "${!building[@]}" || status=$?
  dir=${building[$done_pid]}; unset "building[$done_pid]"
  if [ $status -ne 0 ]; then
    stop_builds
    echo "[setup] building $dir failed (exit $status): see $dir/setup.log" >&2
    tail -n 15 "$dir/setup.log" | sed 's/^/  /' >&2
    exit 1
  fi
  echo "[setup] $dir ready: $(tail -n 1 "$dir/setup.log" | sed 's/^\[setup\] //')"
done
trap - INT TERM
bash scripts/fetch_data.sh
