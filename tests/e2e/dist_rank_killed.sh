#!/usr/bin/env bash
# A rank killed mid-run (kill -9): the other rank exits non-zero within the timeout, the
# launcher reports which rank failed first, and the run is recorded as failed with it.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/k.db"
start_two_rank_run "$DB" --comm-timeout 30
t0=$(date +%s)
kill -9 "$RANK1"
rc=0
wait "$LAUNCHER" || rc=$?
t1=$(date +%s)
[ "$rc" != 0 ] || fail "the launcher exited 0 after a rank was killed"
[ $((t1 - t0)) -le 45 ] || fail "the other rank took $((t1 - t0)) s to stop (timeout 30 s)"
[ "$(q "$DB" "select status from runs where id = '$RUN'")" = failed ] || fail "run not recorded as failed"
err=$(q "$DB" "select error from runs where id = '$RUN'")
case "$err" in
  *"rank 1 was killed by signal 9"*) ;;
  *) fail "the error does not name the killed rank: $err" ;;
esac
echo "dist_rank_killed: ok ($((t1 - t0)) s to stop; error: $err)"
