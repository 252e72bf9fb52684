#!/usr/bin/env bash
# A run that fails (an exception, then a crash by signal) is recorded with its reason and log
# tail while the others finish; --retry-failed resumes the crashed one without duplicating rows.
source "$(dirname "$0")/lib.bash"
DB="$WORK/f.db"
cat > "$WORK/m.toml" <<'EOF'
[sweep]
name = "fail"
[matrix]
method = ["switch"]
seed = [1, 2]
[data]
dataset = "synthetic"
[train]
max_steps = 10
tokens_per_batch = 512
log_every = 5
eval_every = 10
valid_sentences = 0
[[runs]]                 # fails at start-up: the data folder does not exist
method = "switch"
seed = 3
dataset = "files"
data_dir = "/nonexistent/moebench-data"
langs = ["de"]
EOF
if "$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --jobs 2 > "$WORK/out.txt" 2>&1; then
  fail "a sweep with a failed run exited 0"
fi
[ "$(q "$DB" "select count(*) from runs where status = 'finished'")" = 2 ] || fail "others did not finish"
[ "$(q "$DB" "select status || ' ' || exit_code from runs where seed = 3")" = "failed 1" ] || fail "not failed"
err=$(q "$DB" "select error from runs where seed = 3")
echo "$err" | grep -q "nonexistent" || fail "reason lost: $err"
echo "$err" | grep -q -- "--- last lines of" || fail "no log tail: $err"
grep -q "FAILED" "$WORK/out.txt" || fail "no FAILED line: $(cat "$WORK/out.txt")"

# A crash by signal: SIGSEGV to a run process part-way.
cat > "$WORK/long.toml" <<'EOF'
[sweep]
name = "crash"
[matrix]
method = ["switch"]
seed = [7]
[data]
dataset = "synthetic"
[train]
max_steps = 60
tokens_per_batch = 512
log_every = 2
checkpoint_every = 2
eval_every = 60
valid_sentences = 0
EOF
"$MOEBENCH" sweep "$WORK/long.toml" --db "$DB" > "$WORK/crash.txt" 2>&1 &
sweep_pid=$!
run_pid=""
for _ in $(seq 1 600); do
  sleep 0.1
  run_pid=$(q "$DB" "select pid from runs where seed = 7 and status = 'running'
                     and exists (select 1 from metrics m where m.run_id = runs.id and m.step >= 4)" 2>/dev/null || true)
  [ -n "$run_pid" ] && [ "$run_pid" != "$sweep_pid" ] && break
  run_pid=""
done
[ -n "$run_pid" ] || fail "the run never got going"
kill -SEGV "$run_pid"
wait "$sweep_pid" && fail "the sweep exited 0 after its run crashed"
[ "$(q "$DB" "select status || ' ' || exit_code from runs where seed = 7")" = "failed 139" ] ||
  fail "crash not recorded: $(q "$DB" "select status, exit_code, error from runs where seed = 7")"
q "$DB" "select error from runs where seed = 7" | grep -q "signal 11 (SIGSEGV)" || fail "signal not named"
"$MOEBENCH" sweep "$WORK/long.toml" --db "$DB" > "$WORK/retry0.txt" 2>&1 && fail "failed run retried without --retry-failed"
"$MOEBENCH" sweep "$WORK/long.toml" --db "$DB" --retry-failed > "$WORK/retry.txt" 2>&1 ||
  fail "retry failed: $(cat "$WORK/retry.txt")"
[ "$(q "$DB" "select status from runs where seed = 7")" = finished ] || fail "retry did not finish"
grep -q "resumed from step" "$WORK/sweeps/crash/"*/train.log || fail "the retry did not resume from a checkpoint"
[ "$(q "$DB" "select count(*) || ' ' || count(distinct step) || ' ' || max(step) from metrics m join runs r on r.id = m.run_id
              where r.seed = 7 and key = 'train_loss'")" = "30 30 60" ] || fail "rows lost or duplicated"
echo "sweep_failures: ok"
