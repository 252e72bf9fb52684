# Shared by the end-to-end scripts: $1 is the moebench binary.
set -euo pipefail
MOEBENCH="$1"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export MOEBENCH_CACHE="$WORK/cache"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Whether this build has Gloo (CPU) ranks: a CUDA build against a PyTorch wheel has NCCL ones
# only (docs/gpu.md). require_gloo exits 77, which ctest reports as skipped.
has_gloo() { "$MOEBENCH" --version | grep -q "gloo: yes"; }
# Only a CUDA build may lack Gloo: on a CPU build (or if --version stopped saying) it fails.
require_gloo() {
  has_gloo && return 0
  "$MOEBENCH" --version | grep -q "cuda: yes" || fail "no Gloo in: $("$MOEBENCH" --version 2>&1)"
  echo "SKIP: this build has no Gloo ranks"
  exit 77
}
# Prints the single value of a one-column, one-row query. The checks read the database with
# Debian's sqlite3 (scripts/setup.sh), an independent reader: `moebench query` prints the same
# CSV (query_verbs.sh tests it) but loads LibTorch, ~1.3 s a call, and the scripts make hundreds.
q() { sqlite3 -readonly -list -separator , -nullvalue NULL -cmd ".timeout 10000" "$1" "$2"; }
# Waits (up to 2 minutes) until DB names a run and each FILE exists in its checkpoint folder
# ($WORK/runs/<run id>/); sets RUN. Fails with the tail of LOG otherwise.
wait_for_run_files() {
  local db="$1" log="$2"; shift 2
  RUN=""
  for _ in $(seq 1 1200); do
    sleep 0.1
    [ -f "$db" ] || continue
    RUN=$(q "$db" "select id from runs" 2>/dev/null || true)
    [ -n "$RUN" ] || continue
    local f missing=0
    for f in "$@"; do [ -f "$WORK/runs/$RUN/$f" ] || missing=1; done
    [ "$missing" = 0 ] && return 0
  done
  fail "the run never wrote $*: $(tail "$log")"
}

# Starts a long 2-rank training run in the background and waits until it has logged 2 steps:
#   start_two_rank_run [--via-launch] DB [extra train flags]
# The ranks are started by `moebench train --world-size 2`, or with --via-launch by a manual
# `moebench launch --nproc 2 --grace 5 -- moebench train --world-size 2 ...`. Output goes to
# $WORK/two_rank_run.txt. Sets LAUNCHER (the pid of the process that started the ranks), RUN
# (the run id) and RANK1 (the pid of rank 1).
start_two_rank_run() {
  local via_launch=0
  if [ "$1" = --via-launch ]; then via_launch=1; shift; fi
  local db="$1"; shift
  local train=("$MOEBENCH" train --method switch --size tiny --max-steps 100000 --log-every 1
    --eval-every 100000 --checkpoint-every 100000 --valid-sentences 0 --threads 1
    --world-size 2 --db "$db" --quiet "$@")
  if [ "$via_launch" = 1 ]; then
    "$MOEBENCH" launch --nproc 2 --grace 5 -- "${train[@]}" > "$WORK/two_rank_run.txt" 2>&1 &
  else
    "${train[@]}" > "$WORK/two_rank_run.txt" 2>&1 &
  fi
  LAUNCHER=$!
  RUN=""
  for _ in $(seq 1 1200); do
    sleep 0.1
    [ -f "$db" ] || continue
    RUN=$(q "$db" "select run_id from metrics where key = 'train_loss' and step >= 2 limit 1" 2>/dev/null || true)
    [ -n "$RUN" ] && break
  done
  [ -n "$RUN" ] || fail "the run never logged 2 steps: $(tail -20 "$WORK/two_rank_run.txt")"
  RANK1=""
  local p
  for p in $(pgrep -P "$LAUNCHER"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=1'; then RANK1=$p; fi
  done
  [ -n "$RANK1" ] || fail "rank 1 not found among the launcher's children"
}
