#!/usr/bin/env bash
# A rank that hangs (SIGSTOP): the other rank's next collective fails after --comm-timeout, it
# exits non-zero, the launcher stops the hung rank, and the run is recorded as failed with a
# reason that names the timeout. Nothing waits forever.
source "$(dirname "$0")/lib.bash"
DB="$WORK/h.db"
"$MOEBENCH" train --method switch --size tiny --max-steps 100000 --log-every 1 --eval-every 100000 \
  --checkpoint-every 100000 --valid-sentences 0 --threads 1 --world-size 2 --comm-timeout 5 \
  --db "$DB" --quiet > "$WORK/out.txt" 2>&1 &
launcher=$!
run=""
for _ in $(seq 1 1200); do
  sleep 0.1
  [ -f "$DB" ] || continue
  run=$(q "$DB" "select run_id from metrics where key = 'train_loss' and step >= 2 limit 1" 2>/dev/null || true)
  [ -n "$run" ] && break
done
[ -n "$run" ] || fail "the run never logged 2 steps: $(tail -20 "$WORK/out.txt")"
victim=""
for p in $(pgrep -P "$launcher"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=1'; then victim=$p; fi
done
[ -n "$victim" ] || fail "rank 1 not found among the launcher's children"
t0=$(date +%s)
kill -STOP "$victim"
rc=0
wait "$launcher" || rc=$?
t1=$(date +%s)
[ "$rc" != 0 ] || fail "the launcher exited 0 with a hung rank"
# timeout (5 s) + the launcher's grace before SIGKILL (10 s) + slack for a loaded machine
[ $((t1 - t0)) -le 40 ] || fail "took $((t1 - t0)) s to stop (timeout 5 s)"
[ "$(q "$DB" "select status from runs where id = '$run'")" = failed ] || fail "run not recorded as failed"
err=$(q "$DB" "select error from runs where id = '$run'")
case "$err" in
  *"rank 0"*) ;;
  *) fail "the error does not say which rank gave up: $err" ;;
esac
echo "dist_rank_hung: ok ($((t1 - t0)) s to stop; error: $err)"
