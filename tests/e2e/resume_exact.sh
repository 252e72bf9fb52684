#!/usr/bin/env bash
# Resume is exact: a run killed (kill -9) after a checkpoint and rerun records, bit for bit,
# the metrics, evaluations, communication rows and expert loads of the same run left alone;
# only wall-clock measurements (and the MFU and peak memory measured with them) differ. For
# thor (whose random experts and dropout draw from generators a resume must restore), and for
# aux_free (whose selection bias, moved after every step, must come back from the checkpoint: a
# bias reset to 0 routes, and so loads experts, differently; a larger rate than the default
# makes sure it does); long_resume_exact.sh adds switch.
source "$(dirname "$0")/lib.bash"
# Wall-clock measurements: the only values a resume may change.
TIMED="'tokens_per_s','step_ms','compute_ms','comm.ms','comm.measured_ms','eval_seconds','train_seconds','bookkeeping_seconds','checkpoint_seconds','mfu','model_tflops','peak_tflops','peak_mem_mb'"
dump() {  # every recorded value of the run, exactly, in a fixed order
  local db="$1"
  q "$db" "select group_concat(r, '|') from (select key || '@' || step || '=' || printf('%!.17g', value) as r from metrics where key not in ($TIMED) order by key, step)"
  q "$db" "select group_concat(r, '|') from (select split || lang || k || '@' || step || '=' || printf('%!.17g', bleu) || ',' || printf('%!.17g', coalesce(loss, -1)) as r from evals order by split, lang, k, step)"
  q "$db" "select group_concat(r, '|') from (select layer || phase || '@' || step || '=' || bytes_local || ',' || bytes_intra_node || ',' || bytes_inter_node || ',' || wire_bytes || ',' || calls || ',' || printf('%!.17g', modeled_ms) as r from comm order by step, layer, phase)"
  q "$db" "select group_concat(r, '|') from (select layer || ':' || expert || '@' || step || '=' || tokens || ',' || dropped as r from expert_load order by step, layer, expert)"
}
for method in ${RESUME_EXACT_METHODS:-thor aux_free}; do
  args=(train --method "$method" --size tiny --max-steps 60 --checkpoint-every 20 --log-every 10
        --eval-every 30 --valid-sentences 8 --workers 2)
  [ "$method" = aux_free ] && args+=(--set bias_update_rate=0.05)
  "$MOEBENCH" "${args[@]}" --db "$WORK/$method-whole/r.db" > "$WORK/whole.txt" 2>&1 ||
    fail "$method: the uninterrupted run failed: $(cat "$WORK/whole.txt")"
  DB="$WORK/$method-killed/r.db"
  "$MOEBENCH" "${args[@]}" --db "$DB" > "$WORK/killed.txt" 2>&1 &
  pid=$!
  run=""
  for _ in $(seq 1 1200); do
    sleep 0.05
    [ -f "$DB" ] || continue
    run=$(q "$DB" "select id from runs" 2>/dev/null || true)
    [ -n "$run" ] && [ -f "$WORK/$method-killed/runs/$run/checkpoint.pt" ] && break
  done
  [ -n "$run" ] || fail "$method: no checkpoint appeared"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  [ "$(q "$DB" "select status from runs")" = running ] ||
    fail "$method: the run was not interrupted (status $(q "$DB" "select status from runs"))"
  killed_at=$(q "$DB" "select max(step) from metrics where key = 'train_loss'")
  "$MOEBENCH" "${args[@]}" --db "$DB" > "$WORK/resume.txt" 2>&1 || fail "$method: resume failed: $(cat "$WORK/resume.txt")"
  grep -q "resumed from step" "$WORK/resume.txt" || fail "$method: did not resume: $(cat "$WORK/resume.txt")"
  [ "$(q "$DB" "select status from runs")" = finished ] || fail "$method: not finished"
  whole=$(dump "$WORK/$method-whole/r.db")
  resumed=$(dump "$DB")
  [ -n "$whole" ] || fail "$method: nothing recorded"
  if [ "$whole" != "$resumed" ]; then
    diff <(tr '|' '\n' <<< "$whole") <(tr '|' '\n' <<< "$resumed") | head -20 >&2
    fail "$method: the resumed run's records differ from the uninterrupted run's"
  fi
  echo "resume_exact: $method ok (killed after step $killed_at, $(tr '|' '\n' <<< "$whole" | wc -l) values equal)"
done
echo "resume_exact: ok"
