#!/usr/bin/env bash
# `--threads 0` (the default) means the CPUs this process may use (sched_getaffinity), as the
# sweep runner already counts them, not every core of the machine: under `taskset -c 0` (as
# under a Slurm task bound to its CPUs) a run uses 1 thread. Was: hardware_concurrency().
source "$(dirname "$0")/lib.bash"
cpus=$(nproc)            # nproc counts the affinity mask
[ "$cpus" -ge 2 ] || { echo "SKIP: needs 2 usable CPUs to tell the mask from the machine"; exit 77; }
args=(train --method switch --size tiny --max-steps 2 --log-every 1 --eval-every 100
      --valid-sentences 0 --quiet)
taskset -c 0 "$MOEBENCH" "${args[@]}" --db "$WORK/one.db" > "$WORK/one.txt" 2>&1 ||
  fail "taskset run: $(tail "$WORK/one.txt")"
[ "$(q "$WORK/one.db" "select threads from runs")" = 1 ] ||
  fail "under taskset -c 0: $(q "$WORK/one.db" "select threads from runs") threads, expected 1"
"$MOEBENCH" "${args[@]}" --db "$WORK/all.db" --threads 0 > "$WORK/all.txt" 2>&1 ||
  fail "plain run: $(tail "$WORK/all.txt")"
[ "$(q "$WORK/all.db" "select threads from runs")" = "$cpus" ] ||
  fail "--threads 0: $(q "$WORK/all.db" "select threads from runs") threads, expected $cpus"
echo "threads_default: ok"
