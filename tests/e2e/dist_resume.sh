#!/usr/bin/env bash
# A 2-rank run stopped after a checkpoint resumes from the per-rank checkpoints and ends exactly
# where an uninterrupted 2-rank run ends (dropout 0: every draw is seeded by the step), also
# when one rank's newest checkpoint is a step behind the other's.
source "$(dirname "$0")/lib.bash"
require_gloo
args=(train --method switch --size tiny --max-steps 150 --checkpoint-every 10 --log-every 25
      --tokens-per-batch 512
      --eval-every 1000 --valid-sentences 0 --dropout 0 --threads 1 --world-size 2)
mkdir -p "$WORK/ref"  # its own folder: checkpoints live beside the database
"$MOEBENCH" "${args[@]}" --quiet --db "$WORK/ref/ref.db" > "$WORK/ref.txt" 2>&1 || fail "reference run: $(tail "$WORK/ref.txt")"

DB="$WORK/r.db"
"$MOEBENCH" "${args[@]}" --quiet --db "$DB" > "$WORK/first.txt" 2>&1 &
launcher=$!
wait_for_run_files "$DB" "$WORK/first.txt" checkpoint.rank0-of-2.pt.prev \
  checkpoint.rank1-of-2.pt.prev
run=$RUN
kill -TERM "$launcher" 2>/dev/null || true
wait "$launcher" 2>/dev/null || true
if [ "$(q "$DB" "select status from runs")" = finished ]; then
  echo "dist_resume: the run finished before the stop; nothing to resume"; exit 0
fi
[ "$(q "$DB" "select status from runs")" = failed ] || fail "a stopped run is not recorded as failed"
# As if rank 1 had crashed before its last save: its newest checkpoint is one interval behind
# rank 0's. The ranks must resume from the newest step both have (rank 0's previous one).
mv "$WORK/runs/$run/checkpoint.rank1-of-2.pt.prev" "$WORK/runs/$run/checkpoint.rank1-of-2.pt"
"$MOEBENCH" "${args[@]}" --db "$DB" > "$WORK/second.txt" 2>&1 || fail "resume: $(tail "$WORK/second.txt")"
resumed=$(grep -o "resumed from step [0-9]*" "$WORK/second.txt" | head -1)
[ -n "$resumed" ] || fail "the second start did not resume"
[ "$(q "$DB" "select status from runs")" = finished ] || fail "resumed run not finished"
# A metric window closes at every log step and every checkpoint.
windows=$(seq 1 150 | awk '$1 % 25 == 0 || $1 % 10 == 0' | wc -l)
[ "$(q "$DB" "select count(*) from metrics where key = 'train_loss'")" = "$windows" ] ||
  fail "train_loss rows duplicated or missing (expected $windows)"
a=$(q "$WORK/ref/ref.db" "select value from metrics where key = 'train_loss' and step = 150")
b=$(q "$DB" "select value from metrics where key = 'train_loss' and step = 150")
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-5 * a) }' ||
  fail "resumed run ends at loss $b, the uninterrupted one at $a"
# A third start finds it finished: rank 0 tells the other rank, both stop, nothing changes.
n=$(q "$DB" "select count(*) from metrics")
timeout 120 "$MOEBENCH" "${args[@]}" --db "$DB" > "$WORK/third.txt" 2>&1 ||
  fail "starting a finished run failed: $(tail "$WORK/third.txt")"
grep -q "already finished" "$WORK/third.txt" || fail "the third start did not see the finished run"
[ "$(q "$DB" "select count(*) from metrics")" = "$n" ] || fail "rows changed on the third start"
echo "dist_resume: ok ($resumed; final train loss $b, uninterrupted $a)"
