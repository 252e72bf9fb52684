#!/usr/bin/env bash
# Every registered method trains end to end on the synthetic task for a few steps without
# NaN, and its run is recorded finished with bytes counted for 2 workers.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
methods=$("$MOEBENCH" methods | awk -F: '/^[a-z_]+: / { print $1 }')
[ "$(echo "$methods" | wc -l)" -ge 13 ] || fail "expected 13 methods, got: $methods"
for m in base sinkhorn hash; do echo "$methods" | grep -qx "$m" || fail "$m not listed"; done
# The expert layout's two run-spec fields, with their defaults, for the token-choice routers.
"$MOEBENCH" methods > "$WORK/methods.txt"
grep -q "^expert layout .*token-choice routers: .*switch.*hash" "$WORK/methods.txt" ||
  fail "methods: no expert layout line naming the token-choice routers"
grep -Eq "^  shared_experts +0 " "$WORK/methods.txt" &&
  grep -Eq "^  expert_granularity +1 " "$WORK/methods.txt" ||
  fail "methods: shared_experts and expert_granularity are not listed with their defaults"
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
# Shared and fine-grained experts (METHODS-MODERN.md section 2) on the token-choice routers:
# switch with 1 shared expert and granularity 2 (top-1 of 8 routed experts of width 128 and a
# shared one of width 128: the active FFN width of plain tiny switch, 256), gshard with 2 shared
# and granularity 2, gating dropout over switch, hash and uniform (one expert per token from the
# table, or drawn); expert loads of all 8 routed experts.
for layout in "switch 1 2" "gshard 2 2" "gating_dropout 1 2" "hash 1 2" "uniform 1 2"; do
  read -r m ks g <<< "$layout"
  "$MOEBENCH" train --method "$m" --shared-experts "$ks" --expert-granularity "$g" --size tiny \
    --max-steps 6 --log-every 3 --eval-every 6 --valid-sentences 8 --workers 2 --db "$DB" \
    --quiet > "$WORK/layout.out" 2>&1 || fail "$m with shared and fine-grained experts: $(tail -5 "$WORK/layout.out")"
  id=$(q "$DB" "select id from runs where method='$m' and json_extract(spec_json, '$.shared_experts') = $ks")
  [ "$(q "$DB" "select status from runs where id='$id'")" = finished ] || fail "$m $layout: not finished"
  loss=$(q "$DB" "select value from latest_metrics where run_id='$id' and key='train_loss'")
  awk -v l="$loss" 'BEGIN { exit !(l == l + 0 && l > 0 && l < 100) }' || fail "$m $layout: train_loss $loss"
  [ "$(q "$DB" "select max(expert) from expert_load where run_id='$id'")" = 7 ] ||
    fail "$m $layout: expected loads of 8 routed experts"
  echo "$m, shared_experts $ks, expert_granularity $g: train_loss $loss"
done
# Methods that are not token-choice routers refuse them, naming the key.
if "$MOEBENCH" train --method expert_choice --shared-experts 1 --size tiny --max-steps 1 \
    --db "$DB" --quiet > "$WORK/refused.out" 2>&1; then
  fail "expert_choice accepted shared_experts"
fi
grep -q "shared-experts\|shared_experts" "$WORK/refused.out" || fail "refusal does not name the key: $(cat "$WORK/refused.out")"
# Any-k evaluation rows exist for every method (k = 1 and 2).
[ "$(q "$DB" "select count(distinct run_id) from evals where k = 2")" -ge 10 ] || fail "missing any-k evals"
# The options of the generic top-k pipeline (METHODS-MODERN.md): dropless with sigmoid scores,
# node-limited routing on 2 nodes of 2 workers, aux_free with a centred bias and the
# sequence-wise loss; each trains without NaN and records its bytes.
V="$WORK/v.db"
i=0
for opts in "topk --set dropless=true --set score_func=sigmoid --set k=3" \
            "topk --set node_limit_topk=1 --set dropless=true" \
            "aux_free --set bias_center=true --set seq_aux_coef=0.001 --set k=1"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  "$MOEBENCH" train --method $opts --size tiny --max-steps 6 --log-every 3 --eval-every 6 \
    --valid-sentences 8 --workers 4 --workers-per-node 2 --db "$V" --quiet > "$WORK/v$i.out" 2>&1 ||
    fail "$opts: $(tail -5 "$WORK/v$i.out")"
done
[ "$(q "$V" "select count(*) from runs where status = 'finished'")" = 3 ] || fail "variants not finished"
bad=$(q "$V" "select count(*) from latest_metrics where key = 'train_loss' and not (value > 0 and value < 100)")
[ "$bad" = 0 ] || fail "a variant's train_loss is out of range"
# 4 workers in 2 nodes of 2: every variant sends rows to the other worker of its node.
[ "$(q "$V" "select count(distinct run_id) from comm where bytes_intra_node > 0")" = 3 ] ||
  fail "a variant counted no same-node bytes"
echo "methods_train: topk and aux_free options ok"
