#!/usr/bin/env bash
# A rank that hangs (SIGSTOP): the other rank's next collective fails after --comm-timeout, it
# exits non-zero, the launcher stops the hung rank, and the run is recorded as failed with a
# reason that names the timeout. Nothing waits forever.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/h.db"
start_two_rank_run "$DB" --comm-timeout 5
t0=$(date +%s)
kill -STOP "$RANK1"
rc=0
wait "$LAUNCHER" || rc=$?
t1=$(date +%s)
[ "$rc" != 0 ] || fail "the launcher exited 0 with a hung rank"
# timeout (5 s) + the launcher's grace before SIGKILL (10 s) + slack for a loaded machine
[ $((t1 - t0)) -le 40 ] || fail "took $((t1 - t0)) s to stop (timeout 5 s)"
[ "$(q "$DB" "select status from runs where id = '$RUN'")" = failed ] || fail "run not recorded as failed"
err=$(q "$DB" "select error from runs where id = '$RUN'")
case "$err" in
  *"rank 0"*) ;;
  *) fail "the error does not say which rank gave up: $err" ;;
esac
echo "dist_rank_hung: ok ($((t1 - t0)) s to stop; error: $err)"
