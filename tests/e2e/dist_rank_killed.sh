#!/usr/bin/env bash
# A rank killed mid-run (kill -9): the other rank exits non-zero within the timeout, the
# launcher reports which rank failed first, and the run is recorded as failed with it.
source "$(dirname "$0")/lib.bash"
DB="$WORK/k.db"
"$MOEBENCH" train --method switch --size tiny --max-steps 100000 --log-every 1 --eval-every 100000 \
  --checkpoint-every 100000 --valid-sentences 0 --threads 1 --world-size 2 --comm-timeout 30 \
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
kill -9 "$victim"
rc=0
wait "$launcher" || rc=$?
t1=$(date +%s)
[ "$rc" != 0 ] || fail "the launcher exited 0 after a rank was killed"
[ $((t1 - t0)) -le 45 ] || fail "the other rank took $((t1 - t0)) s to stop (timeout 30 s)"
[ "$(q "$DB" "select status from runs where id = '$run'")" = failed ] || fail "run not recorded as failed"
err=$(q "$DB" "select error from runs where id = '$run'")
case "$err" in
  *"rank 1 was killed by signal 9"*) ;;
  *) fail "the error does not name the killed rank: $err" ;;
esac
echo "dist_rank_killed: ok ($((t1 - t0)) s to stop; error: $err)"
