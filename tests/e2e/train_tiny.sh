#!/usr/bin/env bash
# moebench train (tiny, synthetic) writes a finished run whose validation loss falls by at
# least 25% in 150 steps, with metrics, comm bytes, expert load and evals recorded.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
"$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 150 --seed 1 \
  --eval-every 75 --log-every 25 --valid-sentences 60 --workers 2 --workers-per-node 1 \
  --db "$DB" --quiet > "$WORK/out.txt"
grep -q "finished" "$WORK/out.txt" || fail "no finished line: $(cat "$WORK/out.txt")"
run=$(q "$DB" "select id from runs")
[ "$(q "$DB" "select status from runs")" = finished ] || fail "run not finished"
first=$(q "$DB" "select value from metrics where key='valid_loss' and step=0")
last=$(q "$DB" "select value from metrics where key='valid_loss' and step=150")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.75 * a) }' ||
  fail "valid loss did not fall by 25%: $first -> $last"
# The BLAS kernels in use are recorded with the run (OpenBLAS's core name; "" for another BLAS).
[ "$(q "$DB" "select json_type(libs, '$.env.blas_core') from runs")" = text ] ||
  fail "runs.libs lacks env.blas_core"
# So is the experts' schedule: concurrent with two or more intra-op threads (OpenBLAS here).
sched=$(q "$DB" "select json_extract(libs, '$.env.expert_schedule') from runs")
threads=$(q "$DB" "select json_extract(libs, '$.env.intra_op_threads') from runs")
want=serial
[ "$threads" -ge 2 ] && want=concurrent
[ "$sched" = "$want" ] || fail "env.expert_schedule is '$sched' with $threads threads, want $want"
# Validation loss per language (3 synthetic languages): the overall NLL is their
# token-weighted mean, so it lies between the smallest and the largest.
[ "$(q "$DB" "select count(distinct key) from metrics where key like 'valid_nll.%' and step=150")" = 3 ] ||
  fail "expected valid_nll for 3 languages"
[ "$(q "$DB" "select (select value from metrics where key='valid_nll' and step=150) between
   (select min(value) from metrics where key like 'valid_nll.%' and step=150) and
   (select max(value) from metrics where key like 'valid_nll.%' and step=150) as ok")" = 1 ] ||
  fail "overall valid NLL outside the per-language range"
[ "$(q "$DB" "select count(*) from evals where split='valid' and step=150 and lang!='all' and loss is null")" = 0 ] ||
  fail "per-language valid rows without a loss"
[ "$(q "$DB" "select count(*) > 0 from comm where bytes_inter_node > 0")" = 1 ] ||
  fail "no cross-node bytes counted with 2 workers on 2 nodes"
[ "$(q "$DB" "select count(distinct layer) from expert_load")" = 2 ] ||
  fail "expected expert load for 2 MoE layers (tiny: 1 encoder + 1 decoder)"
[ "$(q "$DB" "select count(*) from evals where split='test' and lang='all'")" = 1 ] ||
  fail "no test BLEU"
# Per-sentence test outputs are stored: one row per decoded test sentence (60).
[ "$(q "$DB" "select count(*) from outputs where split='test' and k=0")" = 60 ] ||
  fail "expected 60 stored test outputs"
# The run shows, and the listing includes it.
# (Output is captured first: `grep -q` closing the pipe early would fail the pipeline.)
shown=$("$MOEBENCH" show --db "$DB" "${run:0:6}")
grep -q "other_node" <<<"$shown" || fail "show lacks bytes by class"
listed=$("$MOEBENCH" runs --db "$DB")
grep -q "$run" <<<"$listed" || fail "runs does not list the run"
# Running it again is a no-op: the run is already finished, no rows are duplicated.
n=$(q "$DB" "select count(*) from metrics")
"$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 150 --seed 1 \
  --eval-every 75 --log-every 25 --valid-sentences 60 --workers 2 --workers-per-node 1 \
  --db "$DB" --quiet > "$WORK/again.txt"
grep -q "already finished" "$WORK/again.txt" || fail "second run did not skip"
[ "$(q "$DB" "select count(*) from metrics")" = "$n" ] || fail "rows changed on re-run"
echo "train_tiny: valid loss $first -> $last"
