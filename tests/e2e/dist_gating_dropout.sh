#!/usr/bin/env bash
# Gating dropout on 2 Gloo ranks: with p = 1 no all-to-all runs (no fwd/bwd calls, no bytes
# leave a rank); with p = 0 it trains exactly as Switch on 2 ranks (same losses, same bytes),
# given Switch the same capacity factor (gating dropout's default is the paper's 1.0).
source "$(dirname "$0")/lib.bash"
require_gloo
DB="$WORK/g.db"
common=(train --size tiny --max-steps 4 --log-every 2 --eval-every 100 --checkpoint-every 100
        --valid-sentences 0 --dropout 0 --seed 5 --threads 1 --world-size 2 --db "$DB" --quiet)
"$MOEBENCH" "${common[@]}" --method gating_dropout --set p=1 > "$WORK/p1.txt" 2>&1 ||
  fail "p=1: $(tail -20 "$WORK/p1.txt")"
p1=$(q "$DB" "select id from runs where method = 'gating_dropout'")
[ "$(q "$DB" "select coalesce(sum(calls), 0) from comm where run_id = '$p1' and phase in ('fwd', 'bwd', 'counts')")" = 0 ] ||
  fail "p=1 ran an all-to-all"
[ "$(q "$DB" "select sum(bytes_intra_node + bytes_inter_node) from comm where run_id = '$p1' and phase in ('fwd', 'bwd')")" = 0 ] ||
  fail "p=1 moved bytes off a rank"
[ "$(q "$DB" "select sum(bytes_local) > 0 from comm where run_id = '$p1'")" = 1 ] ||
  fail "p=1 counted no local rows"

"$MOEBENCH" "${common[@]}" --method gating_dropout --set p=0 > "$WORK/p0.txt" 2>&1 ||
  fail "p=0: $(tail -20 "$WORK/p0.txt")"
"$MOEBENCH" "${common[@]}" --method switch --set capacity_factor=1.0 > "$WORK/sw.txt" 2>&1 || fail "switch: $(tail -20 "$WORK/sw.txt")"
p0=$(q "$DB" "select id from runs where method = 'gating_dropout' and id != '$p1'")
sw=$(q "$DB" "select id from runs where method = 'switch'")
worst=$(q "$DB" "select max(abs(x.value - y.value)) from metrics x join metrics y on
                 x.step = y.step and x.key = y.key where x.run_id = '$p0' and y.run_id = '$sw'
                 and x.key = 'train_loss'")
awk -v w="$worst" 'BEGIN { exit !(w == 0) }' || fail "p=0 differs from switch by $worst"
diff=$(q "$DB" "select (select sum(bytes_inter_node + bytes_intra_node) from comm where run_id = '$p0') -
                (select sum(bytes_inter_node + bytes_intra_node) from comm where run_id = '$sw') as d")
[ "$diff" = 0 ] || fail "p=0 and switch count different bytes ($diff)"
echo "dist_gating_dropout: ok"
