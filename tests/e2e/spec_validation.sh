#!/usr/bin/env bash
# One validation of the run spec (harness/spec/run_spec_check.h) at every entry point: a bad
# value given as a `train` flag, as a key of a --run-spec JSON file, or in a manifest is refused
# before anything runs, with a message naming the flag or key (and file:line for manifests),
# and leaves the database as it was. Before, --log-every 0 died of SIGFPE leaving the run
# "running", --lr nan and --dropout 1.5 ended in LibTorch stack traces, and --clip-norm -1,
# --dropout 1, --beam 0, --eval-k 99 on 4 experts, lr = inf and smoe k_max = 99 trained and
# recorded results. Each bad value through each entry point, one case at a time, is in
# tests/e2e/probe_cases.sh (issue 16's table); here: several problems at once, and a manifest
# whose relations fail per run.
source "$(dirname "$0")/lib.bash"
DB="$WORK/v.db"
base=(train --size tiny --dataset synthetic --max-steps 2
      --valid-sentences 0 --db "$DB" --quiet)
"$MOEBENCH" "${base[@]}" --method switch > /dev/null || fail "the valid run failed"
snapshot() { q "$DB" "select count(*) || ':' || group_concat(id || status, ',') from runs" &&
             q "$DB" "select count(*) from metrics"; }
before=$(snapshot)

# Several problems are reported at once.
"$MOEBENCH" "${base[@]}" --method switch --beam 0 --lr nan > "$WORK/out.txt" 2>&1 &&
  fail "two bad values accepted"
grep -qF -- "--beam (beam)" "$WORK/out.txt" && grep -qF -- "--lr (lr)" "$WORK/out.txt" ||
  fail "not every problem reported: $(cat "$WORK/out.txt")"

# A manifest: field ranges name file:line:key; relations (knobs against the experts) name the
# run's line too; nothing runs.
cat > "$WORK/m.toml" <<'EOF'
[matrix]
method = ["smoe_dropout"]
[data]
dataset = "synthetic"
[train]
max_steps = 2
lr = inf
[methods.smoe_dropout]
k_max = 99
EOF
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" > "$WORK/out.txt" 2>&1 && fail "the manifest ran"
grep -qE "m.toml:7: train.lr: must be a finite number > 0, got inf" "$WORK/out.txt" ||
  fail "manifest lr: $(cat "$WORK/out.txt")"
sed -i 's/^lr = inf$/lr = 0.001/' "$WORK/m.toml"
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" > "$WORK/out.txt" 2>&1 && fail "the manifest ran"
grep -qE "m.toml:[0-9]+: .*knobs.k_max: must be at most the number of experts \(4\), got 99" \
  "$WORK/out.txt" || fail "manifest k_max: $(cat "$WORK/out.txt")"

[ "$(snapshot)" = "$before" ] || fail "the database changed: $before -> $(snapshot)"
echo "every bad value refused with its flag or key; nothing stored changed"
