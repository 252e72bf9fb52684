#!/usr/bin/env bash
# Gradient accumulation (--grad-accum; Note [Gradient accumulation]): for a method whose routing
# does not depend on the batch (smoe_dropout: per-token top-k of a frozen router, no capacity,
# no aux loss), 2 micro-batches give the whole batch's gradient, so the losses of the next
# steps agree to rounding with the run without accumulation (dropout off: the masks are drawn
# per forward). Switch (capacity per micro-batch) trains with it too and differs. Too many
# micro-batches for a worker's sentences: the run fails, recorded, naming the knob.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
common=(train --size tiny --dataset synthetic --max-steps 6 --log-every 1 --eval-every 6
  --valid-sentences 0 --dropout 0 --workers 2 --threads 1 --db "$DB" --quiet)
for a in 1 2; do
  "$MOEBENCH" "${common[@]}" --method smoe_dropout --grad-accum "$a" > "$WORK/s$a.txt" 2>&1 ||
    fail "smoe_dropout grad_accum $a: $(tail -5 "$WORK/s$a.txt")"
done
one=$(q "$DB" "select id from runs where method = 'smoe_dropout' and json_extract(spec_json, '$.grad_accum') is null")
two=$(q "$DB" "select id from runs where method = 'smoe_dropout' and json_extract(spec_json, '$.grad_accum') = 2")
[ -n "$one" ] && [ -n "$two" ] && [ "$one" != "$two" ] || fail "runs: '$one' '$two'"
n=$(q "$DB" "select count(*) from metrics x join metrics y on x.step = y.step and x.key = y.key
             where x.run_id = '$one' and y.run_id = '$two' and x.key = 'train_loss'")
[ "$n" = 6 ] || fail "expected 6 loss rows each, got $n"
worst=$(q "$DB" "select max(abs(x.value - y.value) / abs(x.value)) from metrics x join metrics y
                 on x.step = y.step and x.key = y.key
                 where x.run_id = '$one' and y.run_id = '$two' and x.key in ('train_loss', 'grad_norm')")
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || fail "smoe_dropout: 2 micro-batches differ by $worst"
echo "smoe_dropout: 1 vs 2 micro-batches, worst relative difference $worst"
"$MOEBENCH" "${common[@]}" --method switch --grad-accum 2 > "$WORK/sw.txt" 2>&1 ||
  fail "switch grad_accum 2: $(tail -5 "$WORK/sw.txt")"
[ "$(q "$DB" "select status from runs where method = 'switch'")" = finished ] || fail "switch not finished"
if "$MOEBENCH" "${common[@]}" --method switch --grad-accum 1000 > "$WORK/bad.txt" 2>&1; then
  fail "grad_accum 1000 accepted"
fi
grep -q "grad_accum 1000: a worker's .* sentences of the step's batch cannot be split" "$WORK/bad.txt" ||
  fail "unclear error: $(cat "$WORK/bad.txt")"
[ "$(q "$DB" "select status from runs where json_extract(spec_json, '$.grad_accum') = 1000")" = failed ] ||
  fail "the refused run is not recorded failed"
echo "grad_accum: ok"
