#!/usr/bin/env bash
# --precision bf16 (autocast; Note [Device and precision]) trains on the CPU: a different run
# id, the precision recorded with the run, train losses close to the fp32 run's (same seed,
# same batches, same fp32 routing) but not identical, and half the bytes on the exchange.
# --device cuda on a CPU build is refused with a message naming the switch.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
common=(train --method switch --size tiny --dataset synthetic --max-steps 20 --seed 2
  --log-every 10 --eval-every 20 --valid-sentences 0 --threads 1 --quiet)
"$MOEBENCH" "${common[@]}" --workers 2 --db "$DB" > "$WORK/fp32.txt"
"$MOEBENCH" "${common[@]}" --workers 2 --db "$DB" --precision bf16 > "$WORK/bf16.txt"
[ "$(q "$DB" "select count(*) from runs where status='finished'")" = 2 ] || fail "expected 2 finished runs"
bf=$(q "$DB" "select id from runs where json_extract(libs, '$.compute.precision')='bf16'")
fp=$(q "$DB" "select id from runs where json_extract(libs, '$.compute.precision')='fp32'")
[ -n "$bf" ] && [ -n "$fp" ] && [ "$bf" != "$fp" ] || fail "precision not recorded per run: '$bf' '$fp'"
[ "$(q "$DB" "select json_extract(spec_json, '$.precision') from runs where id='$bf'")" = bf16 ] ||
  fail "bf16 not in the run spec"
[ "$(q "$DB" "select device from runs where id='$bf'")" = cpu ] || fail "device not recorded"
loss() { q "$DB" "select value from metrics where run_id='$1' and key='train_loss' and step=$2"; }
# The train losses at steps 10 and 20 of run B_RUN (in database B_DB) are within TOL (relative)
# of run A_RUN's in $DB; with DIFFERENT=1 they must also differ.
losses_close() {
  local a_run="$1" b_db="$2" b_run="$3" tol="$4" different="${5:-0}" step a b
  for step in 10 20; do
    a=$(loss "$a_run" $step)
    b=$(q "$b_db" "select value from metrics where run_id='$b_run' and key='train_loss' and step=$step")
    awk -v a="$a" -v b="$b" -v tol="$tol" -v diff="$different" \
      'BEGIN { d = (a > b ? a - b : b - a) / a; exit !(d < tol && (diff == 0 || d > 0)) }' ||
      fail "step $step: loss $a (run $a_run) vs $b (run $b_run in $b_db)"
  done
}
# bf16 keeps 8 mantissa bits: the losses agree to well under 1% after 20 steps here, and a run
# that silently stayed in fp32 would agree exactly.
losses_close "$fp" "$DB" "$bf" 0.01 1
# The all-to-all rows are bf16: 2 bytes per element. The padded exchange's wire bytes depend
# only on the batches and the capacity, not on the routing, so they are exactly half.
wire() { q "$DB" "select sum(wire_bytes) from comm where run_id='$1' and phase in ('fwd', 'bwd')"; }
wf=$(wire "$fp")
wb=$(wire "$bf")
[ -n "$wb" ] && [ "$wb" -gt 0 ] && [ $((2 * wb)) = "$wf" ] || fail "wire bytes fp32 $wf, bf16 $wb"
# The same bf16 run on 2 Gloo ranks (which move bf16 rows as fp16 bits: Gloo has no bf16):
# the losses of the one-process run with 2 virtual workers, and the same bytes.
if has_gloo; then
  "$MOEBENCH" "${common[@]}" --precision bf16 --world-size 2 --ranks-per-node 1 \
    --db "$WORK/ranks.db" > "$WORK/ranks.txt" 2>&1 || fail "bf16 on 2 ranks: $(tail -5 "$WORK/ranks.txt")"
  losses_close "$bf" "$WORK/ranks.db" "$(q "$WORK/ranks.db" "select id from runs")" 1e-3
  [ "$(q "$WORK/ranks.db" "select sum(wire_bytes) from comm where phase in ('fwd', 'bwd')")" = "$wb" ] ||
    fail "2 ranks moved other bytes than the one-process bf16 run"
fi
# CPU builds refuse the GPU with a message naming the build switch. A CUDA build on a GPU
# machine trains there: recorded on cuda, with the losses of the same run on the CPU (same
# seed, batches and routing; float sums in another order) and the same exchange bytes. Both
# runs draw nothing at random (no dropout, no jitter): a GPU draws from its own generators.
# (--tokens-per-batch stated: the CPU run's batches, not the GPU's default budget.)
nodraw=(--workers 2 --dropout 0 --set jitter=0 --tokens-per-batch 2048)
if "$MOEBENCH" "${common[@]}" "${nodraw[@]}" --device cuda --db "$WORK/c.db" \
  > "$WORK/cuda.txt" 2>&1; then
  [[ "$(q "$WORK/c.db" "select device from runs")" == cuda:* ]] || fail "cuda run not recorded on cuda"
  "$MOEBENCH" "${common[@]}" "${nodraw[@]}" --db "$DB" > "$WORK/cpu_nodraw.txt" 2>&1 ||
    fail "the cpu run without draws: $(tail -5 "$WORK/cpu_nodraw.txt")"
  cpu=$(q "$DB" "select id from runs where json_extract(spec_json, '$.dropout') = 0")
  cuda=$(q "$WORK/c.db" "select id from runs")
  losses_close "$cpu" "$WORK/c.db" "$cuda" 1e-3
  [ "$(q "$WORK/c.db" "select sum(wire_bytes) from comm where phase in ('fwd', 'bwd')")" = \
    "$(q "$DB" "select sum(wire_bytes) from comm where run_id='$cpu' and phase in ('fwd', 'bwd')")" ] ||
    fail "the cuda run moved other bytes than the cpu run"
else
  grep -q "MOEBENCH_CUDA=ON\|no CUDA device" "$WORK/cuda.txt" ||
    fail "no message naming the switch: $(cat "$WORK/cuda.txt")"
fi
echo "train_precision: ok"
