#!/usr/bin/env bash
# A rank that raises (its checkpoint is unreadable when the run resumes): it exits with an
# error naming the file, the other rank's collective fails at once instead of waiting, and the
# run is recorded as failed with the rank that failed first.
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/x.db"
args=(train --method switch --size tiny --max-steps 100000 --log-every 5 --eval-every 100000
      --checkpoint-every 5 --valid-sentences 0 --threads 1 --world-size 2 --comm-timeout 60
      --db "$DB")
"$MOEBENCH" "${args[@]}" --quiet > "$WORK/first.txt" 2>&1 &
launcher=$!
wait_for_run_files "$DB" "$WORK/first.txt" checkpoint.rank1-of-2.pt
run=$RUN
kill -TERM "$launcher" 2>/dev/null || true
wait "$launcher" 2>/dev/null || true
echo "not a checkpoint" > "$WORK/runs/$run/checkpoint.rank1-of-2.pt"
t0=$(date +%s)
rc=0
"$MOEBENCH" "${args[@]}" > "$WORK/second.txt" 2>&1 || rc=$?
t1=$(date +%s)
[ "$rc" != 0 ] || fail "resuming with an unreadable checkpoint succeeded"
[ $((t1 - t0)) -le 50 ] || fail "took $((t1 - t0)) s to stop (the timeout is 60 s: nobody should wait for it)"
grep -q "^\[rank 1\].*checkpoint.rank1-of-2.pt cannot be read" "$WORK/second.txt" ||
  fail "rank 1's error does not name the file: $(grep 'rank 1' "$WORK/second.txt" | tail -3)"
[ "$(q "$DB" "select status from runs")" = failed ] || fail "run not recorded as failed"
err=$(q "$DB" "select error from runs")
case "$err" in
  *"rank 1 exited with code 1"*) ;;
  *) fail "the error does not name the failed rank: $err" ;;
esac
echo "dist_rank_raises: ok ($((t1 - t0)) s to stop; error: $err)"
