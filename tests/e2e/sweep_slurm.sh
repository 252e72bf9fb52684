#!/usr/bin/env bash
# --slurm writes a job-array script (checked by parsing, then by running each array task here
# with SLURM_ARRAY_TASK_ID set); every task writes its own database; collect merges them, twice
# without duplicates. The same flow with a local --per-run-db.
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
grep -qx '#SBATCH --gpus-per-task=1' "$S" || fail "gpus"
# The run ids in the script, by the shell's own parsing, are the manifest's.
bash -c "eval \"\$(sed -n '/^RUNS=(/,/^)/p' '$S')\"; printf '%s\n' \"\${RUNS[@]}\"" | sort > "$WORK/ids.txt"
"$MOEBENCH" sweep "$WORK/m.toml" --dry-run --format json --db "$WORK/none.db" |
  /usr/bin/python3 -c 'import json,sys; print("\n".join(sorted(r["run_id"] for r in json.load(sys.stdin))))' > "$WORK/want.txt"
diff "$WORK/ids.txt" "$WORK/want.txt" || fail "script run ids differ from the manifest's"
bash -c "eval \"\$(grep '^SWEEP_DIR=' '$S')\"; printf '%s' \"\$SWEEP_DIR\"" > "$WORK/dir.txt"
[ "$(cat "$WORK/dir.txt")" = "$SDIR" ] || fail "SWEEP_DIR quoted wrong: $(cat "$WORK/dir.txt")"

for i in 0 1 2; do
  SLURM_ARRAY_TASK_ID=$i MOEBENCH_BIN="$MOEBENCH" bash "$S" || fail "array task $i failed"
done
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

# The same flow locally.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/local.db" --per-run-db --sweep-dir "$WORK/local" --jobs 2 \
  > "$WORK/l.txt" 2>&1 || fail "--per-run-db sweep failed: $(cat "$WORK/l.txt")"
[ -f "$WORK/local.db" ] && fail "--per-run-db wrote the main database"
"$MOEBENCH" collect "$WORK/local" --db "$WORK/local.db" > /dev/null || fail "local collect failed"
[ "$(q "$WORK/local.db" "select count(*) from runs where status = 'finished' and sweep_id like 'slurm-%'")" = 3 ] ||
  fail "local collect"
echo "sweep_slurm: ok"
