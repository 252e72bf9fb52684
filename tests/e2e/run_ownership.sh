#!/usr/bin/env bash
# A run belongs to its database (issue: hollow "finished" runs). Today's failure, first: the
# README's two databases in one folder (results/smoke.db beside results/moebench.db) found each
# other's checkpoint under <folder>/runs/<run id>/ and the second recorded a "finished" run with
# no training in it. Also: --run-dir pointed at another run's folder is refused; a corrupt
# checkpoint fails the run with a readable reason; a run stopped after its final checkpoint
# resumes to its stored results, not zeros. Nothing already stored changes.
source "$(dirname "$0")/lib.bash"
args=(train --method switch --size tiny --max-steps 20 --checkpoint-every 10 --log-every 5
      --eval-every 10 --valid-sentences 0)
A="$WORK/results/moebench.db"
B="$WORK/results/smoke.db"
"$MOEBENCH" "${args[@]}" --db "$A" --quiet > "$WORK/a.txt" || fail "first run: $(cat "$WORK/a.txt")"
RUN=$(q "$A" "select id from runs")
CKPT="$WORK/results/runs/$RUN/checkpoint.pt"
[ -f "$CKPT" ] || fail "no checkpoint at $CKPT"
a_rows() { q "$A" "select count(*) || ':' || sum(value) from metrics where key not like '%seconds%' and key not in ('tokens_per_s','step_ms','compute_ms','comm.ms','comm.measured_ms','mfu','model_tflops','peak_tflops','peak_mem_mb')"; }
a_before=$(a_rows)
ckpt_before=$(sha256sum "$CKPT" | cut -d' ' -f1)
n_a=$(q "$A" "select count(*) from metrics")

# 1. A second database in the same folder trains its own run.
"$MOEBENCH" "${args[@]}" --db "$B" > "$WORK/b.txt" 2>&1 || fail "second database: $(cat "$WORK/b.txt")"
grep -q "is not this run's" "$WORK/b.txt" || fail "no message about the other database's checkpoint: $(cat "$WORK/b.txt")"
[ "$(q "$B" "select status from runs where id = '$RUN'")" = finished ] || fail "B's run not finished"
n_b=$(q "$B" "select count(*) from metrics")
[ "$n_b" = "$n_a" ] || fail "B's run has $n_b metric rows, A's $n_a: B did not train"
[ "$(q "$B" "select count(*) from metrics where key = 'train_loss'")" = 4 ] || fail "B: train_loss rows"
tps=$(q "$B" "select value > 0 from latest_metrics where run_id = '$RUN' and key = 'tokens_per_s'")
[ "$tps" = 1 ] || fail "B: tokens/s is not positive"
grep -q "valid loss 0," "$WORK/b.txt" && fail "B reports a zero valid loss: $(cat "$WORK/b.txt")"
[ "$(a_rows)" = "$a_before" ] || fail "A's rows changed"
[ "$(sha256sum "$CKPT" | cut -d' ' -f1)" = "$ckpt_before" ] || fail "A's checkpoint was overwritten"
ls -d "$WORK/results/runs/$RUN".db-* > /dev/null || fail "B's checkpoints are not in a folder of their own"
# Rerunning either is a no-op that says so.
"$MOEBENCH" "${args[@]}" --db "$B" > "$WORK/b2.txt" 2>&1 || fail "rerun B: $(cat "$WORK/b2.txt")"
grep -q "already finished" "$WORK/b2.txt" || fail "rerun of B: $(cat "$WORK/b2.txt")"

# 2. --run-dir of another run (another seed) is refused, naming the flag; nothing of it changes.
"$MOEBENCH" "${args[@]}" --seed 2 --db "$A" --run-dir "$WORK/results/runs/$RUN" > "$WORK/c.txt" 2>&1 &&
  fail "a foreign --run-dir was accepted: $(cat "$WORK/c.txt")"
grep -q -- "--run-dir .*is not this run's: it was written for run $RUN" "$WORK/c.txt" ||
  fail "unclear refusal: $(cat "$WORK/c.txt")"
grep -qi "terminate called\|Exception raised from" "$WORK/c.txt" && fail "a stack trace: $(cat "$WORK/c.txt")"
RUN2=$(q "$A" "select id from runs where seed = 2")
[ "$(q "$A" "select status from runs where id = '$RUN2'")" = failed ] || fail "the refused run is not recorded failed"
[ "$(q "$A" "select count(*) from metrics where run_id = '$RUN2'")" = 0 ] || fail "the refused run has metrics"
[ "$(sha256sum "$CKPT" | cut -d' ' -f1)" = "$ckpt_before" ] || fail "the foreign checkpoint changed"
[ "$(a_rows)" = "$(q "$A" "select count(*) || ':' || sum(value) from metrics where run_id = '$RUN' and key not like '%seconds%' and key not in ('tokens_per_s','step_ms','compute_ms','comm.ms','comm.measured_ms','mfu','model_tflops','peak_tflops','peak_mem_mb')")" ] ||
  fail "run $RUN's rows changed"

# 3. A corrupt checkpoint: the run fails with a readable reason, no stack trace.
C="$WORK/c/c.db"
mkdir -p "$WORK/c/runs/$RUN"
echo "not a checkpoint" > "$WORK/c/runs/$RUN/checkpoint.pt"
"$MOEBENCH" "${args[@]}" --db "$C" > "$WORK/d.txt" 2>&1 && fail "a corrupt checkpoint was accepted"
grep -qi "terminate called\|Exception raised from\|frame #" "$WORK/d.txt" && fail "a stack trace: $(cat "$WORK/d.txt")"
err=$(q "$C" "select error from runs where id = '$RUN'")
case "$err" in *"checkpoint $WORK/c/runs/$RUN/checkpoint.pt cannot be read"*) ;; *) fail "failure reason: $err" ;; esac
case "$err" in *"Exception raised from"*|*"frame #"*) fail "the recorded reason has a stack trace: $err" ;; esac
[ "$(q "$C" "select status from runs where id = '$RUN'")" = failed ] || fail "corrupt checkpoint: not failed"

# 4. Stopped after its final checkpoint, before it was recorded finished (a kill -9 during the
# final evaluation leaves the row running under a dead pid): the rerun reports the stored
# results.
# Use A's own folder: the run, its database (a copy keeps the id) and its final checkpoint.
cp "$A" "$WORK/results/e2.db"
/usr/bin/python3 - "$WORK/results/e2.db" "$RUN" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("update runs set status = 'running', pid = 999999999, ended_at = NULL where id = ?", (sys.argv[2],))
con.commit()
PY
n_before=$(q "$WORK/results/e2.db" "select count(*) from metrics where key = 'train_loss'")
"$MOEBENCH" "${args[@]}" --db "$WORK/results/e2.db" > "$WORK/f.txt" 2>&1 || fail "resume at the last step: $(cat "$WORK/f.txt")"
grep -q "resumed from step 20" "$WORK/f.txt" || fail "did not resume from the final checkpoint: $(cat "$WORK/f.txt")"
grep -q "finished: 20 steps, valid loss 0," "$WORK/f.txt" && fail "zeros reported: $(cat "$WORK/f.txt")"
loss=$(q "$A" "select printf('%.4g', value) from latest_metrics where run_id = '$RUN' and key = 'valid_loss'")
grep -q "valid loss $loss" "$WORK/f.txt" || fail "not the stored valid loss $loss: $(cat "$WORK/f.txt")"
[ "$(q "$WORK/results/e2.db" "select status from runs where id = '$RUN'")" = finished ] || fail "not finished after the resume"
[ "$(q "$WORK/results/e2.db" "select count(*) from metrics where key = 'train_loss'")" = "$n_before" ] || fail "train_loss rows changed"
echo "run_ownership: ok"
