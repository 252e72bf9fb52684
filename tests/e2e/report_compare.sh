#!/usr/bin/env bash
# moebench compare: two real runs side by side; significance is "not measured" without
# per-sentence outputs, and a paired bootstrap p-value once an outputs table holds them.
# moebench report: a clear error naming python3-matplotlib when no interpreter has it.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
train() {
  "$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 20 --eval-every 20 \
    --log-every 10 --valid-sentences 10 --tokens-per-batch 1024 --threads 1 --quiet --db "$DB" "$@"
}
train --seed 1 --workers 1 > /dev/null
train --seed 2 --workers 4 --workers-per-node 2 > /dev/null
# Runs store their per-sentence test outputs; remove them to see the "not measured" path.
/usr/bin/python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('delete from outputs'); c.commit()" "$DB"
a=$(q "$DB" "select id from runs where seed = 1")
b=$(q "$DB" "select id from runs where seed = 2")

out=$("$MOEBENCH" compare --db "$DB" "${a:0:6}" "${b:0:6}")
echo "$out" | grep -q "seed: 1 -> 2" || fail "compare lacks the spec difference: $out"
echo "$out" | grep -q "workers: 1 -> 4" || fail "compare lacks the workers difference: $out"
echo "$out" | grep -q "not measured (no per-sentence outputs stored)" ||
  fail "compare should say significance is not measured: $out"
# One worker sends nothing across nodes; four workers on two nodes do.
echo "$out" | grep -E -q "^bytes/step other node +0 +[1-9]" ||
  fail "other-node bytes should be 0 for A and > 0 for B: $out"

# Per-sentence outputs, in the layout compare reads (see harness/cli/cmd_compare.cpp): A's
# hypotheses equal the references (BLEU 100), B's share no word with them (BLEU 0). Every
# resample then has |B - A| = 100 = the observed difference, none exceeds it, and
# sacreBLEU's rule gives p = (0 + 1) / (1000 + 1).
/usr/bin/python3 - "$DB" "$a" "$b" <<'EOF'
import sqlite3, sys
db, a, b = sys.argv[1:]
conn = sqlite3.connect(db)
refs = [f"the cat number {i} sat on the mat today" for i in range(30)]
for i, ref in enumerate(refs):
    conn.execute("insert into outputs values (?, 20, 'test', 'xa', 0, ?, ?, ?)", (a, i, ref, ref))
    conn.execute("insert into outputs values (?, 20, 'test', 'xa', 0, ?, 'zz qq ww', ?)",
                 (b, i, ref))
conn.commit()
EOF
"$MOEBENCH" compare --db "$DB" "$a" "$b" --format json > "$WORK/cmp.json"
/usr/bin/python3 - "$WORK/cmp.json" <<'EOF' || fail "bootstrap result: $(cat "$WORK/cmp.json")"
import json, sys
sig = json.load(open(sys.argv[1]))["significance"]
assert sig["sentences"] == 30, sig
assert abs(sig["bleu_a"] - 100) < 1e-9 and sig["bleu_b"] == 0.0, sig
assert abs(sig["p_value"] - 1 / 1001) < 1e-12, sig
EOF
"$MOEBENCH" compare --db "$DB" "$a" nosuchrun 2> "$WORK/err.txt" && fail "unknown run accepted"
grep -q "no run 'nosuchrun'" "$WORK/err.txt" || fail "unknown run message: $(cat "$WORK/err.txt")"

# The report with the outputs table present (its BLEU test runs `moebench bleu --paired-bs`);
# here the two runs are not comparable configurations, so no claim uses it, but the report runs.
"$MOEBENCH" report --db "$DB" --out "$WORK/rep" > "$WORK/rep.txt" || fail "report failed"
[ -s "$WORK/rep/index.html" ] || fail "no index.html"

# No interpreter with matplotlib: a clear error naming the Debian package.
if MOEBENCH_PYTHON=/bin/false "$MOEBENCH" report --db "$DB" --out "$WORK/x" 2> "$WORK/err.txt"; then
  fail "report without matplotlib succeeded"
fi
grep -q "python3-matplotlib" "$WORK/err.txt" || fail "error does not name the package: $(cat "$WORK/err.txt")"
"$MOEBENCH" report --db "$DB" --format gif 2> /dev/null && fail "--format gif accepted"
echo "report_compare: ok"
