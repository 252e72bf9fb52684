#!/usr/bin/env bash
# Under a manual `moebench launch`, a rank killed by a signal marks the run failed naming that
# rank (as `train --world-size` does); it used to stay `running`, then `pending`.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/l.db"
start_two_rank_run --via-launch "$DB"
kill -9 "$RANK1"
rc=0
wait "$LAUNCHER" || rc=$?
[ "$rc" != 0 ] || fail "launch exited 0 after a rank was killed"
[ "$(q "$DB" "select status from runs where id = '$RUN'")" = failed ] ||
  fail "run not recorded failed: $(q "$DB" "select status from runs") $(tail -5 "$WORK/two_rank_run.txt")"
err=$(q "$DB" "select error from runs where id = '$RUN'")
case "$err" in
  *"rank 1 was killed by signal 9"*) ;;
  *) fail "the error does not name the killed rank: $err" ;;
esac
echo "launch_rank_killed: ok (error: $err)"
