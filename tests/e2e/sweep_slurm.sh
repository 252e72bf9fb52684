#!/usr/bin/env bash
# --slurm writes a job-array script (checked by parsing, then by running each array task here
# with SLURM_ARRAY_TASK_ID set, as generated: no MOEBENCH_BIN, no MOEBENCH_CACHE, from another
# folder); every task writes its own database; collect merges them, twice without duplicates,
# and exits non-zero naming a task that produced none. The same flow with a local --per-run-db.
# tests/e2e/slurm_real.sh runs such scripts on a real Slurm.
source "$(dirname "$0")/lib.bash"
cat > "$WORK/m.toml" <<'EOF'
[sweep]
name = "slurm"
[matrix]
method = ["switch"]
seed = [1, 2, 3]
[data]
dataset = "synthetic"
[train]
max_steps = 10
tokens_per_batch = 512
log_every = 5
eval_every = 10
valid_sentences = 0
EOF
SDIR="$WORK/sweep dir's"   # a space and a quote: the script must quote its values
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/main.db" --sweep-dir "$SDIR" --slurm "$WORK/job.sbatch" \
  --partition gpu --time 01:00:00 --gpus-per-run 1 > "$WORK/out.txt" || fail "--slurm failed"
S="$WORK/job.sbatch"
bash -n "$S" || fail "the script is not valid bash"
grep -qx '#SBATCH --array=0-2' "$S" || fail "array line: $(grep SBATCH "$S")"
grep -qx '#SBATCH --partition=gpu' "$S" || fail "partition"
grep -qx '#SBATCH --time=01:00:00' "$S" || fail "time"
grep -qx '#SBATCH --gpus=1' "$S" || fail "gpus per run: $(grep SBATCH "$S")"
grep -qx '#SBATCH --ntasks=1' "$S" || fail "ntasks"
# The collect hint names the database given (absolute), quoted.
hint=$(sed -n 's/^#   moebench collect //p' "$S")
eval "set -- $hint"
[ "$1" = "$SDIR" ] && [ "$2" = --db ] && [ "$3" = "$WORK/main.db" ] || fail "collect hint: $hint"
grep -qF "export MOEBENCH_CACHE='$MOEBENCH_CACHE'" "$S" || fail "data cache: $(grep CACHE "$S")"
# The run ids in the script, by the shell's own parsing, are the manifest's.
bash -c "eval \"\$(sed -n '/^RUNS=(/,/^)/p' '$S')\"; printf '%s\n' \"\${RUNS[@]}\"" | sort > "$WORK/ids.txt"
"$MOEBENCH" sweep "$WORK/m.toml" --dry-run --format json --db "$WORK/none.db" |
  /usr/bin/python3 -c 'import json,sys; print("\n".join(sorted(r["run_id"] for r in json.load(sys.stdin))))' > "$WORK/want.txt"
diff "$WORK/ids.txt" "$WORK/want.txt" || fail "script run ids differ from the manifest's"
bash -c "eval \"\$(grep '^SWEEP_DIR=' '$S')\"; printf '%s' \"\$SWEEP_DIR\"" > "$WORK/dir.txt"
[ "$(cat "$WORK/dir.txt")" = "$SDIR" ] || fail "SWEEP_DIR quoted wrong: $(cat "$WORK/dir.txt")"

# Runs task $1 as generated, from another folder, with no moebench variables set; stdout and
# stderr (what Slurm's %A_%a.out would hold) go to $WORK/task$1.out.
run_task() {
  mkdir -p "$WORK/elsewhere"
  (cd "$WORK/elsewhere" && env -u MOEBENCH_BIN -u MOEBENCH_CACHE SLURM_ARRAY_TASK_ID="$1"     bash "$S" > "$WORK/task$1.out" 2>&1)
}
# Today's defect: with the binary's default path quoted literally every task exited 127.
for i in 0 1 2; do
  run_task $i || fail "array task $i failed: $(cat "$WORK/task$i.out")"
  grep -q "its log: $SDIR/.*/train.log" "$WORK/task$i.out" || fail "task $i: no log line: $(cat "$WORK/task$i.out")"
done
[ -d "$WORK/elsewhere/data-cache" ] && fail "the tasks made data-cache/ in their working folder"
for id in $(cat "$WORK/ids.txt"); do
  [ -f "$SDIR/$id/run.db" ] || fail "task for $id wrote no run.db"
done
[ -f "$WORK/main.db" ] && [ "$(q "$WORK/main.db" "select count(*) from runs")" != 0 ] &&
  fail "array tasks wrote to the main database"
"$MOEBENCH" collect "$SDIR" --db "$WORK/main.db" > "$WORK/c1.txt" || fail "collect failed"
grep -q "collected 3 databases" "$WORK/c1.txt" || fail "collect: $(cat "$WORK/c1.txt")"
[ "$(q "$WORK/main.db" "select count(*) from runs where status = 'finished' and sweep_id like 'slurm-%'")" = 3 ] ||
  fail "collected runs not finished and tagged"
[ "$(q "$WORK/main.db" "select count(*) from sweeps where name = 'slurm'")" = 1 ] || fail "sweep row"
before=$(q "$WORK/main.db" "select count(*) from metrics")
"$MOEBENCH" collect "$SDIR" --db "$WORK/main.db" > /dev/null || fail "second collect failed"
[ "$(q "$WORK/main.db" "select count(*) from metrics")" = "$before" ] || fail "collect duplicated metrics"
[ "$(q "$WORK/main.db" "select count(*) from runs")" = 3 ] || fail "collect duplicated runs"
# Everything finished: nothing left to submit.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/main.db" --sweep-dir "$SDIR" --slurm "$WORK/job2.sbatch" > "$WORK/out2.txt" ||
  fail "second --slurm failed"
grep -q "nothing to submit" "$WORK/out2.txt" || fail "second --slurm: $(cat "$WORK/out2.txt")"

# A task that fails before training: it says so and where the log is, with the log's tail;
# collect then exits non-zero naming the task.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/fresh.db" --sweep-dir "$WORK/f" --slurm "$WORK/f.sbatch" \
  > /dev/null || fail "third --slurm failed"
S="$WORK/f.sbatch"
BAD=$(bash -c "eval \"\$(sed -n '/^RUNS=(/,/^)/p' '$S')\"; printf '%s' \"\${RUNS[1]}\"")
rm "$WORK/f/$BAD/spec.json"
run_task 0 || fail "task 0 of f.sbatch failed: $(cat "$WORK/task0.out")"
rc=0
run_task 1 || rc=$?
[ "$rc" != 0 ] || fail "a task without its spec exited 0"
grep -q "run $BAD FAILED: exit code $rc" "$WORK/task1.out" || fail "no failure line: $(cat "$WORK/task1.out")"
grep -q "its log: $WORK/f/$BAD/train.log" "$WORK/task1.out" || fail "no log line: $(cat "$WORK/task1.out")"
grep -q "spec.json" "$WORK/task1.out" || fail "the log's tail is not shown: $(cat "$WORK/task1.out")"
rc=0
"$MOEBENCH" collect "$WORK/f" --db "$WORK/fresh.db" > "$WORK/c3.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "collect exited 0 with a task missing: $(cat "$WORK/c3.txt")"
grep -q "task 1 of $S: run $BAD" "$WORK/c3.txt" || fail "collect does not name task 1: $(cat "$WORK/c3.txt")"
grep -q "collected 1 databases" "$WORK/c3.txt" || fail "collect did not merge the rest: $(cat "$WORK/c3.txt")"
# --cpus-per-run must split over a run's ranks.
cat > "$WORK/r3.toml" <<'EOF2'
[sweep]
name = "r3"
[matrix]
method = ["switch"]
[topology]
world_size = 3
EOF2
rc=0
"$MOEBENCH" sweep "$WORK/r3.toml" --db "$WORK/r3.db" --slurm "$WORK/r3.sbatch" --cpus-per-run 8 \
  > "$WORK/r3.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -q -- "--cpus-per-run 8" "$WORK/r3.txt" || fail "--cpus-per-run 8 over 3 ranks: $(cat "$WORK/r3.txt")"

# The same flow locally.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/local.db" --per-run-db --sweep-dir "$WORK/local" --jobs 2 \
  > "$WORK/l.txt" 2>&1 || fail "--per-run-db sweep failed: $(cat "$WORK/l.txt")"
[ -f "$WORK/local.db" ] && fail "--per-run-db wrote the main database"
"$MOEBENCH" collect "$WORK/local" --db "$WORK/local.db" > /dev/null || fail "local collect failed"
[ "$(q "$WORK/local.db" "select count(*) from runs where status = 'finished' and sweep_id like 'slurm-%'")" = 3 ] ||
  fail "local collect"
echo "sweep_slurm: ok"
