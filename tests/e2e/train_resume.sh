#!/usr/bin/env bash
# A run killed after a checkpoint resumes from it: no duplicated rows, finishes at max_steps.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
args=(train --method switch --size tiny --max-steps 40 --checkpoint-every 20 --log-every 10
      --eval-every 20 --valid-sentences 0 --db "$DB" --quiet)
"$MOEBENCH" "${args[@]}" &
pid=$!
run=""
for _ in $(seq 1 600); do
  sleep 0.1
  [ -f "$DB" ] || continue
  run=$(q "$DB" "select id from runs" 2>/dev/null || true)
  [ -n "$run" ] && [ -f "$WORK/runs/$run/checkpoint.pt" ] && break
done
[ -n "$run" ] || fail "run never started"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ "$(q "$DB" "select status from runs")" = finished ]; then
  echo "train_resume: the run finished before the kill; nothing to resume"; exit 0
fi
"$MOEBENCH" "${args[@]}" 2> "$WORK/err.txt" || fail "resume failed: $(cat "$WORK/err.txt")"
[ "$(q "$DB" "select status from runs")" = finished ] || fail "resumed run not finished"
[ "$(q "$DB" "select max(step) from metrics where key='train_loss'")" = 40 ] || fail "wrong last step"
[ "$(q "$DB" "select count(*) from metrics where key='train_loss'")" = 4 ] ||
  fail "train_loss rows duplicated or missing"
echo "train_resume: ok"
