#!/usr/bin/env bash
# One writer per run: a second `moebench train` of the same spec on the same database, while
# the first is training, refuses (naming the process that holds the run) instead of training
# too; the first finishes with one set of rows. Today both trained and wrote the same
# checkpoint.
source "$(dirname "$0")/lib.bash"
DB="$WORK/w.db"
args=(train --method switch --size tiny --max-steps 60 --checkpoint-every 20 --log-every 5
      --eval-every 60 --valid-sentences 0 --db "$DB")
"$MOEBENCH" "${args[@]}" --quiet > "$WORK/first.txt" 2>&1 &
first=$!
RUN=""
for _ in $(seq 1 1200); do
  sleep 0.1
  [ -f "$DB" ] || continue
  RUN=$(q "$DB" "select run_id from metrics where key = 'train_loss' limit 1" 2>/dev/null || true)
  [ -n "$RUN" ] && break
done
[ -n "$RUN" ] || fail "the first run never logged a step: $(cat "$WORK/first.txt")"
[ "$(q "$DB" "select status from runs")" = running ] || fail "the first run is not running"
rc=0
"$MOEBENCH" "${args[@]}" > "$WORK/second.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the second writer exited 0: $(cat "$WORK/second.txt")"
grep -q "is already being trained by process $first" "$WORK/second.txt" ||
  fail "the refusal does not name the first process ($first): $(cat "$WORK/second.txt")"
grep -qi "terminate called\|Exception raised from" "$WORK/second.txt" && fail "a stack trace: $(cat "$WORK/second.txt")"
# The refusal changed nothing: the run is still the first process's.
[ "$(q "$DB" "select status || ':' || pid from runs")" = "running:$first" ] ||
  fail "the refused writer touched the run: $(q "$DB" "select status || ':' || pid from runs")"
wait "$first" || fail "the first run failed: $(cat "$WORK/first.txt")"
[ "$(q "$DB" "select status from runs")" = finished ] || fail "the first run did not finish"
[ "$(q "$DB" "select count(*) from metrics where key = 'train_loss'")" = 12 ] || fail "train_loss rows: not 12"
echo "train_one_writer: ok"
