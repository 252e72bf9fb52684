#!/usr/bin/env bash
# kill -9 of the sweep at random moments, then a resume, repeated: in the end every run is
# finished exactly once with every metric row present once; no dead run is ever listed as
# running, and no run process outlives its sweep.
# SWEEP_KILL_REPS (default 3) sets the repetitions; SWEEP_KILL_CHILDREN=1 also kill -9s a random
# run process in each repetition (tests/e2e/long_sweep_kill_resume.sh does both, longer).
source "$(dirname "$0")/lib.bash"
REPS=${SWEEP_KILL_REPS:-3}
DB="$WORK/k.db"
cat > "$WORK/m.toml" <<'EOF'
[sweep]
name = "kill"
[matrix]
method = ["switch"]
seed = [1, 2, 3]
[data]
dataset = "synthetic"
[train]
max_steps = 30
tokens_per_batch = 512
warmup = 10
log_every = 5
checkpoint_every = 5
eval_every = 15
valid_sentences = 0
EOF
for rep in $(seq 1 "$REPS"); do
  "$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --jobs 2 --retry-failed >> "$WORK/log.txt" 2>&1 &
  pid=$!
  # A random moment between 0.3 and 4 s: before, during and after runs start and checkpoint.
  sleep "$(( RANDOM % 4 )).$(( RANDOM % 10 ))"
  sleep 0.3
  if [ "${SWEEP_KILL_CHILDREN:-0}" = 1 ] && [ -f "$DB" ]; then
    victim=$(q "$DB" "select pid from runs where status = 'running' order by random() limit 1" 2>/dev/null || true)
    [ -n "$victim" ] && [ "$victim" != "$pid" ] && kill -9 "$victim" 2>/dev/null || true
    sleep "0.$(( RANDOM % 10 ))"
  fi
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # The run processes die with their sweep (PR_SET_PDEATHSIG).
  for _ in $(seq 1 50); do
    pgrep -f -- "--run-spec $WORK/sweeps/kill/" > /dev/null || break
    sleep 0.1
  done
  pgrep -f -- "--run-spec $WORK/sweeps/kill/" > /dev/null && fail "a run process outlived its sweep"
  if grep -q "runs in sweep" "$WORK/log.txt"; then   # (a kill may come before the database exists)
    # `runs` finds the dead ones and lists them interrupted (it never writes), never running.
    "$MOEBENCH" runs --db "$DB" --format csv > "$WORK/runs.csv" 2> "$WORK/runs_err.txt" ||
      fail "runs failed: $(cat "$WORK/runs_err.txt")"
    grep -q ",running," "$WORK/runs.csv" && fail "rep $rep: a dead run is listed as running: $(cat "$WORK/runs.csv")"
  fi
done
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --jobs 2 --retry-failed >> "$WORK/log.txt" 2>&1 ||
  fail "final resume failed: $(tail -20 "$WORK/log.txt")"
[ "$(q "$DB" "select count(*) from runs")" = 3 ] || fail "runs duplicated"
[ "$(q "$DB" "select count(*) from runs where status = 'finished'")" = 3 ] || fail "not all finished"
for seed in 1 2 3; do
  got=$(q "$DB" "select count(*) || ' ' || count(distinct m.step) || ' ' || min(m.step) || ' ' || max(m.step)
                 from metrics m join runs r on r.id = m.run_id where r.seed = $seed and m.key = 'train_loss'")
  [ "$got" = "6 6 5 30" ] || fail "seed $seed: train_loss rows (count distinct min max) = $got, want 6 6 5 30"
  got=$(q "$DB" "select count(*) from metrics m join runs r on r.id = m.run_id where r.seed = $seed and m.key = 'valid_loss'")
  [ "$got" = 3 ] || fail "seed $seed: valid_loss rows = $got, want 3 (steps 0, 15, 30)"
  got=$(q "$DB" "select count(*) from latest_metrics l join runs r on r.id = l.run_id where r.seed = $seed
                 and l.key = 'train_loss' and l.step = 30")
  [ "$got" = 1 ] || fail "seed $seed: latest train_loss is not step 30"
done
echo "sweep_kill_resume: ok ($REPS kills; $(cat "$WORK"/sweeps/kill/*/train.log | grep -c 'resumed from step' || true) resumes from a checkpoint)"
