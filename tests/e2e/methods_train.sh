#!/usr/bin/env bash
# Every registered method trains end to end on the synthetic task for a few steps without
# NaN, and its run is recorded finished with bytes counted for 2 workers.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
methods=$("$MOEBENCH" methods | awk -F: '/^[a-z_]+: / { print $1 }')
[ "$(echo "$methods" | wc -l)" -ge 7 ] || fail "expected 7 methods, got: $methods"
for m in $methods; do
  "$MOEBENCH" train --method "$m" --size tiny --max-steps 6 --log-every 3 --eval-every 6 \
    --valid-sentences 8 --eval-k 1,2 --workers 2 --db "$DB" --quiet > "$WORK/$m.out" 2>&1 ||
    fail "$m: $(tail -5 "$WORK/$m.out")"
  status=$(q "$DB" "select status from runs where method='$m'")
  [ "$status" = finished ] || fail "$m: status $status"
  loss=$(q "$DB" "select value from latest_metrics l join runs r on r.id = l.run_id where r.method='$m' and key='train_loss'")
  awk -v l="$loss" 'BEGIN { exit !(l == l + 0 && l > 0 && l < 100) }' || fail "$m: train_loss $loss"
  echo "$m: train_loss $loss"
done
# Any-k evaluation rows exist for every method (k = 1 and 2).
[ "$(q "$DB" "select count(distinct run_id) from evals where k = 2")" -ge 7 ] || fail "missing any-k evals"
