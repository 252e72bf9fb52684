#!/usr/bin/env bash
# Under a manual `moebench launch`, a rank killed by a signal marks the run failed naming that
# rank (as `train --world-size` does). Today the row stayed `running`, then `pending`.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/l.db"
"$MOEBENCH" launch --nproc 2 --grace 5 -- "$MOEBENCH" train --method switch --size tiny \
  --max-steps 100000 --log-every 1 --eval-every 100000 --checkpoint-every 100000 \
  --valid-sentences 0 --threads 1 --world-size 2 --db "$DB" --quiet > "$WORK/launch.txt" 2>&1 &
LAUNCHER=$!
RUN=""
for _ in $(seq 1 1200); do
  sleep 0.1
  [ -f "$DB" ] || continue
  RUN=$(q "$DB" "select run_id from metrics where key = 'train_loss' and step >= 2 limit 1" 2>/dev/null || true)
  [ -n "$RUN" ] && break
done
[ -n "$RUN" ] || fail "the run never logged 2 steps: $(tail -20 "$WORK/launch.txt")"
RANK1=""
for p in $(pgrep -P "$LAUNCHER"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=1'; then RANK1=$p; fi
done
[ -n "$RANK1" ] || fail "rank 1 not found among the launcher's children"
kill -9 "$RANK1"
rc=0
wait "$LAUNCHER" || rc=$?
[ "$rc" != 0 ] || fail "launch exited 0 after a rank was killed"
[ "$(q "$DB" "select status from runs where id = '$RUN'")" = failed ] ||
  fail "run not recorded failed: $(q "$DB" "select status from runs") $(tail -5 "$WORK/launch.txt")"
err=$(q "$DB" "select error from runs where id = '$RUN'")
case "$err" in
  *"rank 1 was killed by signal 9"*) ;;
  *) fail "the error does not name the killed rank: $err" ;;
esac
echo "launch_rank_killed: ok (error: $err)"
