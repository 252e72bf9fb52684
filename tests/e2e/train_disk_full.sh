#!/usr/bin/env bash
# A checkpoint written to a full file system: the run is recorded failed with a readable
# reason (the path and "No space left on device"), no stack trace, exit non-zero; what the
# database already held stays. Needs a tiny tmpfs for the run folder (mount, as root); skipped
# with the reason elsewhere.
source "$(dirname "$0")/lib.bash"
MNT="$WORK/full"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=64k tmpfs "$MNT" 2> "$WORK/mount.txt"; then
  echo "SKIP: cannot mount a 64 KiB tmpfs here: $(cat "$WORK/mount.txt")"
  exit 77
fi
trap 'umount "$MNT" 2>/dev/null; rm -rf "$WORK"' EXIT
DB="$WORK/d.db"
"$MOEBENCH" train --method switch --size tiny --max-steps 10 --checkpoint-every 5 --log-every 5 \
  --eval-every 10 --valid-sentences 0 --db "$DB" --run-dir "$MNT/run" > "$WORK/out.txt" 2>&1 &&
  fail "the run succeeded with a 64 KiB run folder"
grep -qi "terminate called\|Exception raised from\|frame #" "$WORK/out.txt" && fail "a stack trace: $(cat "$WORK/out.txt")"
[ "$(q "$DB" "select status from runs")" = failed ] || fail "not recorded failed: $(q "$DB" "select status from runs")"
err=$(q "$DB" "select error from runs")
case "$err" in
  *"cannot write the checkpoint $MNT/run/checkpoint.pt"*) ;;
  *) fail "the reason does not name the checkpoint: $err" ;;
esac
case "$err" in *"Exception raised from"*|*"frame #"*) fail "the reason has a stack trace: $err" ;; esac
# The metrics logged before the failed checkpoint are still there.
[ "$(q "$DB" "select count(*) from metrics where key = 'train_loss'")" = 1 ] || fail "the step-5 metrics are gone"
ls "$MNT/run"/*.tmp 2> /dev/null && fail "a partial checkpoint was left behind"
echo "train_disk_full: ok ($err)"
