#!/usr/bin/env bash
# Counts the processes that outlive a federated run stopped by a signal, as a user stops it
# (Ctrl-C or `kill` to the job's process group), for both command lines:
#   bash scripts/orphan_check.sh [tries per signal, default 20]
# Each try starts a run in its own session, waits for its first checkpoint (TFF's worker_binary
# then runs), waits 0.5, 2, 3.5 or 5 s more (in turn: a signal that lands while TFF is working is
# the one that used to leave a worker behind), signals the process group, waits for the run to
# end, waits 3 s more (TFF restarts a worker about a second after a failed call), and counts the
# processes left in the session. CPU-heavy: each try starts TensorFlow and TFF.
# Env: PYTHON (default .venv-tff/bin/python), TREE (the source tree to run, default this
# repository), COMMANDS (default "fedfix monna"), SIGNALS (default "INT TERM").
set -uo pipefail
cd "$(dirname "$0")/.."
TRIES=${1:-20}
PYTHON=${PYTHON:-$PWD/.venv-tff/bin/python}
TREE=${TREE:-$PWD}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

declare -A ARGS=(
  [fedfix]="--algorithm async --model logistic --clients 3 --horizon 400 --local-steps 1 --batch-size 8 --eval-every 100 --checkpoint-every 1000 --no-progress"
  [monna]="--machines 5 --byzantine 1 --batch-size 4 --steps 5000 --eval-every 1000 --checkpoint-every 1000 --no-progress"
)

DELAYS=(0.5 2 3.5 5)

session_members() {  # live processes whose session id is $1
  ps -eo pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ {print $1}'
}

for command in ${COMMANDS:-fedfix monna}; do
  for sig in ${SIGNALS:-INT TERM}; do
    left_runs=0 left_processes=0 unfinished=0
    for ((try = 1; try <= TRIES; try++)); do
      out="$WORK/$command-$sig-$try"
      (cd "$TREE" && exec setsid env PYTHONPATH="$TREE" "$PYTHON" -m "tff_experiments.$command" \
        ${ARGS[$command]} --out "$out" >"$out.log" 2>&1) &
      leader=$!
      for ((wait = 0; wait < 2400; wait++)); do  # up to 240 s for the first checkpoint
        [[ -d "$out/checkpoints/step_0" ]] && break
        kill -0 "$leader" 2>/dev/null || break
        sleep 0.1
      done
      sleep "${DELAYS[$(( (try - 1) % ${#DELAYS[@]} ))]}"
      kill -s "$sig" -- "-$leader" 2>/dev/null
      for ((wait = 0; wait < 600; wait++)); do  # up to 60 s to end
        kill -0 "$leader" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$leader" 2>/dev/null; then
        unfinished=$((unfinished + 1))
        kill -KILL -- "-$leader" 2>/dev/null
      fi
      wait "$leader" 2>/dev/null
      sleep 3
      members=$(session_members "$leader")
      if [[ -n "$members" ]]; then
        left_runs=$((left_runs + 1))
        left_processes=$((left_processes + $(wc -w <<<"$members")))
        kill -KILL $members 2>/dev/null
      fi
    done
    echo "$command SIG$sig: $left_runs of $TRIES runs left processes behind ($left_processes processes);" \
      "$unfinished did not end within 60 s of the signal"
  done
done
