#!/usr/bin/env bash
# Out of memory while building the model (100,000 experts of the base size: 400 GB of expert
# weights per layer): the run is recorded failed with a readable reason, no stack trace, and
# the process exits non-zero.
source "$(dirname "$0")/lib.bash"
DB="$WORK/o.db"
rc=0
"$MOEBENCH" train --method switch --size base --num-experts 100000 --max-steps 1 \
  --valid-sentences 0 --db "$DB" > "$WORK/out.txt" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "the run succeeded"
[ "$rc" -lt 128 ] || fail "killed by a signal ($rc): $(tail -5 "$WORK/out.txt")"
grep -qi "terminate called\|Exception raised from\|frame #" "$WORK/out.txt" && fail "a stack trace: $(cat "$WORK/out.txt")"
[ "$(q "$DB" "select status from runs")" = failed ] || fail "not recorded failed"
err=$(q "$DB" "select error from runs")
case "$err" in *"allocate"*) ;; *) fail "the reason does not say it could not allocate: $err" ;; esac
case "$err" in *"Exception raised from"*|*"frame #"*) fail "the reason has a stack trace: $err" ;; esac
echo "train_setup_oom: ok ($err)"
