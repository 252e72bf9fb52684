#!/usr/bin/env bash
# A sweep of four tiny runs with --jobs 2: all finish, two at a time, each with its share of the
# cores; a second invocation skips them; --dry-run, --only, --max-runs, runs --where/--sort and
# export show what the issue promises.
source "$(dirname "$0")/lib.bash"
DB="$WORK/s.db"
cat > "$WORK/m.toml" <<'EOF'
[sweep]
name = "e2e"
[matrix]
method = ["switch"]
seed = [1, 2]
switch.capacity_factor = [1.0, 2.0]
[data]
dataset = "synthetic"
[train]
max_steps = 10
tokens_per_batch = 512
warmup = 5
log_every = 5
eval_every = 10
checkpoint_every = 5
valid_sentences = 0
EOF

"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --dry-run > "$WORK/dry.txt"
grep -q "): 4 runs" "$WORK/dry.txt" || fail "dry run: $(cat "$WORK/dry.txt")"
[ "$(grep -c ' new$' "$WORK/dry.txt")" = 4 ] || fail "dry run statuses: $(cat "$WORK/dry.txt")"
[ -f "$DB" ] && fail "--dry-run created the database"
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --dry-run --only seed=1 --format json > "$WORK/only.json"
[ "$(/usr/bin/python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/only.json")" = 2 ] ||
  fail "--only seed=1 should select 2 runs"

"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --jobs 2 > "$WORK/out.txt" 2>&1 ||
  fail "sweep failed: $(cat "$WORK/out.txt")"
[ "$(q "$DB" "select count(*) from runs where status = 'finished'")" = 4 ] || fail "not 4 finished"
[ "$(q "$DB" "select count(*) from runs where sweep_id like 'e2e-%'")" = 4 ] || fail "runs not tagged"
[ "$(q "$DB" "select count(*) from metrics where key = 'train_loss'")" = 8 ] || fail "train_loss rows"
# Two at a time: some pair of runs overlapped in time, and each had half the cores.
[ "$(q "$DB" "select count(*) from runs a, runs b where a.id < b.id and a.started_at < b.ended_at
               and b.started_at < a.ended_at")" -ge 1 ] || fail "no two runs ran at the same time"
cores=$(nproc); want=$(( cores / 2 )); [ "$want" -ge 1 ] || want=1
[ "$(q "$DB" "select count(*) from runs where threads = $want")" = 4 ] || fail "threads per job"
[ -s "$WORK/sweeps/e2e/sweep.json" ] || fail "no sweep.json"
[ "$(q "$DB" "select count(*) from sweeps where name = 'e2e' and manifest like '%capacity_factor%'")" = 1 ] ||
  fail "sweep row"

# Again: nothing to do, nothing duplicated.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$DB" --jobs 2 > "$WORK/again.txt" 2>&1 || fail "rerun failed"
grep -q "4 already finished" "$WORK/again.txt" || fail "rerun: $(cat "$WORK/again.txt")"
[ "$(q "$DB" "select count(*) from metrics where key = 'train_loss'")" = 8 ] || fail "rerun duplicated rows"

# Querying.
n=$("$MOEBENCH" runs --db "$DB" --sweep e2e --where "params.capacity_factor = 2 and seed = 1" --format csv | tail -n +2 | wc -l)
[ "$n" = 1 ] || fail "--where matched $n runs"
first=$("$MOEBENCH" runs --db "$DB" --sort "params.capacity_factor desc, seed desc" --format csv | sed -n 2p | cut -d, -f1)
want_first=$(q "$DB" "select id from runs where seed = 2 and json_extract(spec_json, '$.knobs.capacity_factor') = '2.0'")
[ "$first" = "$want_first" ] || fail "--sort: first is $first, expected $want_first"
"$MOEBENCH" runs --db "$DB" --where "colour = 1" 2> "$WORK/err.txt" && fail "bad --where accepted"
grep -q "unknown key 'colour'" "$WORK/err.txt" || fail "bad --where message: $(cat "$WORK/err.txt")"
"$MOEBENCH" export --db "$DB" --sweep e2e --csv > "$WORK/x.csv" || fail "export csv"
[ "$(wc -l < "$WORK/x.csv")" = 5 ] || fail "export csv rows"
head -1 "$WORK/x.csv" | grep -q "params.capacity_factor" || fail "csv params"
head -1 "$WORK/x.csv" | grep -q "metrics.train_loss" || fail "csv metrics"
"$MOEBENCH" export --db "$DB" --json --history -o "$WORK/x.json"
/usr/bin/python3 - "$WORK/x.json" <<'EOF' || fail "export json"
import json, sys
runs = json.load(open(sys.argv[1]))
assert len(runs) == 4, len(runs)
for r in runs:
    assert r["status"] == "finished"
    assert r["spec"]["max_steps"] == 10
    assert len(r["history"]["train_loss"]) == 2
    assert "valid_loss" in r["metrics"]
EOF

# --max-runs starts at most that many; the rest stay pending.
"$MOEBENCH" sweep "$WORK/m.toml" --db "$WORK/m.db" --max-runs 1 > "$WORK/max.txt" 2>&1 || fail "max-runs"
[ "$(q "$WORK/m.db" "select group_concat(status, ' ') from (select status from runs order by status)")" = \
  "finished pending pending pending" ] || fail "--max-runs 1"
echo "sweep_run: ok"
