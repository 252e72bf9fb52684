#!/usr/bin/env bash
# moebench report passes --alpha, --bootstrap-samples and --column through to the Python report,
# and refuses bad values naming the flag. The database is constructed (the real schema from
# `moebench collect` of an empty folder): one seed of thor and switch, thor's test outputs equal
# to the references and switch's sharing no word with them, so no resample has thor <= switch
# and the BLEU claim's one-sided p is exactly 1 / (samples + 1).
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
mkdir "$WORK/empty"
"$MOEBENCH" collect "$WORK/empty" --db "$DB" > /dev/null
/usr/bin/python3 - "$DB" <<'EOF'
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
refs = [f"sentence number {i} of the test set" for i in range(20)]
for rid, method, bleu, hyps in (("t1", "thor", 30.0, refs), ("s1", "switch", 10.0, ["qq zz"] * 20)):
    spec = {"method": method, "size": "tiny", "seed": 1, "dataset": "synthetic",
            "max_steps": 100, "knobs": {}, "workers": 1, "workers_per_node": 1}
    conn.execute("insert into runs (id, method, size, seed, spec_json, status) values "
                 "(?, ?, 'tiny', 1, ?, 'finished')", (rid, method, json.dumps(spec)))
    for split in ("valid", "test"):
        conn.execute("insert into evals (run_id, step, wall_s, split, lang, k, bleu, signature, "
                     "n_sentences) values (?, 100, 1.0, ?, 'xa', 0, ?, "
                     "'nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1', 20)",
                     (rid, split, bleu))
    for i, hyp in enumerate(hyps):
        conn.execute("insert into outputs values (?, 100, 'test', 'xa', 0, ?, ?, ?)",
                     (rid, i, hyp, refs[i]))
conn.commit()
EOF
claim() {  # the thor.switch claim of OUT/summary.json, then python assertions on `c`, `s`
  /usr/bin/python3 -c "
import json, sys
s = json.load(open(sys.argv[1] + '/summary.json'))
c = {r['id']: r for r in s['claims']}['thor.switch']
$2" "$1" || fail "$3: $(cat "$1/summary.md")"
}

"$MOEBENCH" report --db "$DB" --out "$WORK/default" > "$WORK/default.txt" || fail "report failed"
claim "$WORK/default" "assert s['alpha'] == 0.05 and c['p'] == 1 / 1001, c" "defaults"
grep -q "alpha = 0.05" "$WORK/default/summary.md" || fail "default alpha not in the claims note"

# --no-figures: the same tables and claims, no figure drawn or listed, and the page says so.
"$MOEBENCH" report --db "$DB" --out "$WORK/strict" --alpha 0.01 --bootstrap-samples 200 \
  --no-figures > "$WORK/strict.txt" || fail "report --alpha 0.01 --no-figures failed"
[ -z "$(ls "$WORK/strict/figures")" ] || fail "--no-figures drew: $(ls "$WORK/strict/figures")"
[ "$(ls "$WORK/default/figures" | wc -l)" -ge 10 ] || fail "the default report drew no figures"
claim "$WORK/strict" "assert s['figures'] == [], s['figures']" "--no-figures lists figures"
grep -q "no figures (--no-figures)" "$WORK/strict.txt" || fail "summary line: $(cat "$WORK/strict.txt")"
grep -q "No figures: the report ran with --no-figures" "$WORK/strict/index.html" ||
  fail "the page does not say it has no figures"
/usr/bin/python3 -c "
import json, sys
a, b = (json.load(open(f + '/summary.json'))['tables']['configurations'] for f in sys.argv[1:])
sys.exit(a != b)" "$WORK/default" "$WORK/strict" || fail "--no-figures changed the configurations table"
claim "$WORK/strict" "assert s['alpha'] == 0.01 and c['p'] == 1 / 201, c" \
  "--alpha 0.01 --bootstrap-samples 200 should reach the report"
grep -q "alpha = 0.01;" "$WORK/strict/summary.md" || fail "the claims note does not state alpha 0.01"
grep -q "alpha 0.01" "$WORK/strict.txt" || fail "report's summary line lacks alpha 0.01"
# 1/201 = 0.005 <= 0.01: supported; at alpha 0.004 it is not.
claim "$WORK/strict" "assert c['verdict'] == 'supported', c" "supported at 0.01"
"$MOEBENCH" report --db "$DB" --out "$WORK/stricter" --alpha 0.004 --bootstrap-samples 200 \
  --no-figures > /dev/null || fail "report --alpha 0.004 failed"
claim "$WORK/stricter" "assert c['verdict'] == 'direction agrees, not significant', c" \
  "not significant at 0.004 with p = 1/201"

# --column: the paper width of the figures, 3.4 in (244.8 pt) or 7 in (504 pt, the default).
for column in one two default; do
  extra=(--column "$column")
  [ "$column" = default ] && extra=()
  "$MOEBENCH" report --db "$DB" --out "$WORK/col-$column" --figure train_loss "${extra[@]}" \
    > /dev/null || fail "report --figure train_loss ${extra[*]} failed"
  want=504pt
  [ "$column" = one ] && want=244.8pt
  grep -q "<svg[^>]* width=\"$want\"" "$WORK/col-$column/figures/train_loss.svg" ||
    fail "--column $column: $(grep -o '<svg[^>]*>' "$WORK/col-$column/figures/train_loss.svg")"
done

bad() {  # expected message, then the report's extra arguments
  local want="$1"; shift
  if "$MOEBENCH" report --db "$DB" --out "$WORK/bad" "$@" 2> "$WORK/err.txt"; then
    fail "report $* accepted"
  fi
  grep -q -- "$want" "$WORK/err.txt" || fail "report $*: expected '$want' in: $(cat "$WORK/err.txt")"
  [ ! -e "$WORK/bad" ] || fail "report $* wrote output before refusing"
}
bad "--alpha must be in (0, 1), got 0" --alpha 0
bad "--alpha must be in (0, 1), got 1" --alpha 1
bad "--alpha must be in (0, 1), got 1.5" --alpha 1.5
bad "--alpha" --alpha abc
bad "--bootstrap-samples must be >= 100, got 99" --bootstrap-samples 99
bad "--bootstrap-samples" --bootstrap-samples 1e3
bad "--no-figures" --no-figures --figure train_loss
bad "--column: three not in {one,two}" --column three
echo "report_options: ok"
