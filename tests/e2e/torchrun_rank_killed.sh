#!/usr/bin/env bash
# Under Debian's torchrun (as users call it: no --standalone, the agent's store), a rank killed
# by a signal leaves the run recorded failed, naming that rank, not `running` (issue 16). The
# agent does not know the database: rank 0 names the rank whose process ended, whether its
# own collective fails first or the agent's SIGTERM reaches it first (Note [A rank that ended
# under another launcher], harness/train/rank_watch.h). Skipped where torchrun is not installed.
source "$(dirname "$0")/lib.bash"
require_gloo
command -v torchrun > /dev/null || { echo "SKIP: torchrun is not installed (apt-get install python3-torch)"; exit 77; }
DB="$WORK/k.db"
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
torchrun --redirects 1 --tee 1 --nproc_per_node 2 --master_port "$port" --no_python \
  "$MOEBENCH" train --method switch --size tiny --max-steps 100000 --log-every 1 \
  --eval-every 100000 --checkpoint-every 100000 --valid-sentences 0 --threads 1 --db "$DB" \
  --quiet > "$WORK/tr.txt" 2>&1 &
AGENT=$!
RUN=""
for _ in $(seq 1 1200); do
  sleep 0.1
  [ -f "$DB" ] || continue
  RUN=$(q "$DB" "select run_id from metrics where key = 'train_loss' and step >= 2 limit 1" 2>/dev/null || true)
  [ -n "$RUN" ] && break
done
[ -n "$RUN" ] || { kill "$AGENT" 2>/dev/null || true; fail "the run never logged 2 steps: $(tail -20 "$WORK/tr.txt")"; }
RANK1=""
for p in $(pgrep -P "$AGENT"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=1'; then RANK1=$p; fi
done
[ -n "$RANK1" ] || { kill "$AGENT" 2>/dev/null || true; fail "rank 1 not found among torchrun's children"; }
kill -9 "$RANK1"
rc=0
wait "$AGENT" || rc=$?
[ "$rc" != 0 ] || fail "torchrun exited 0 after a rank was killed"
status=$(q "$DB" "select status from runs where id = '$RUN'")
err=$(q "$DB" "select error from runs where id = '$RUN'")
[ "$status" = failed ] || fail "run recorded '$status', not failed (error: $err): $(tail -20 "$WORK/tr.txt")"
case "$err" in
  *"rank 1 (pid $RANK1)"*) ;;
  *) fail "the error does not name the killed rank 1 (pid $RANK1): $err" ;;
esac
echo "torchrun_rank_killed: ok (torchrun exit $rc; error: $err)"
