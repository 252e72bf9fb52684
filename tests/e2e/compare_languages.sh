#!/usr/bin/env bash
# moebench compare's paired bootstrap scores each language with its own tokenizer and, over all
# languages, the headline (the mean of the per-language BLEU), not a BLEU pooled with 13a. Runs
# are constructed (the real schema from `moebench collect` of an empty folder, hand-made
# per-sentence outputs), so the expected scores follow from the BLEU definition.
source "$(dirname "$0")/lib.bash"
DB="$WORK/c.db"
mkdir "$WORK/empty"
"$MOEBENCH" collect "$WORK/empty" --db "$DB" > /dev/null
# outputs(run, lang, idx, hyp, ref) rows from stdin as JSON lines: [run, lang, idx, hyp, ref].
fill() {
  /usr/bin/python3 -c '
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("delete from outputs")
for line in sys.stdin:
    run, lang, idx, hyp, ref = json.loads(line)
    conn.execute("insert into outputs values (?, 20, ?, ?, 0, ?, ?, ?)", (run, "test", lang, idx, hyp, ref))
conn.commit()' "$DB"
}
/usr/bin/python3 - "$DB" <<'EOF'
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
for rid, seed in (("aaaa1", 1), ("bbbb2", 2)):
    spec = {"method": "switch", "size": "tiny", "seed": seed}
    conn.execute("insert into runs (id, method, size, seed, spec_json, status) values "
                 "(?, 'switch', 'tiny', ?, ?, 'finished')", (rid, seed, json.dumps(spec)))
conn.commit()
EOF
sig() { "$MOEBENCH" compare --db "$DB" aaaa1 bbbb2 --format json "$@" > "$WORK/cmp.json" ||
  fail "compare $* failed"; }
check() {  # python assertions on `s` (the significance object)
  /usr/bin/python3 -c "import json, sys; s = json.load(open(sys.argv[1]))['significance']; $1" \
    "$WORK/cmp.json" || fail "$2: $(cat "$WORK/cmp.json")"
}

# 1. Chinese, one language. Each reference has 9 characters and no space; B repeats the first 8
# and ends with a character the reference lacks. Under zh (each character a token) B matches
# 8/9, 7/8, 6/7, 5/6 n-grams at equal length: BLEU = 100 (5/9)^(1/4) = 86.334. Under 13a (what
# compare used) each sentence is one token and B matches nothing: BLEU 0.
/usr/bin/python3 - > "$WORK/zh.jsonl" <<'EOF'
import json
base = "我们今天去公园散步看书写字唱歌跳舞"
for i in range(30):
    ref = "".join(base[(i + j) % len(base)] for j in range(9))
    print(json.dumps(["aaaa1", "zh", i, ref, ref]))
    print(json.dumps(["bbbb2", "zh", i, ref[:8] + "猫", ref]))
EOF
fill < "$WORK/zh.jsonl"
for lang in all zh; do
  sig --lang "$lang"
  check "assert s['sentences'] == 30 and abs(s['bleu_a'] - 100) < 1e-9 and abs(s['bleu_b'] - 100 * (5 / 9) ** 0.25) < 1e-9, s" \
    "zh, --lang $lang: B should score 100 (5/9)^(1/4) under the zh tokenizer"
done
check "assert 'zh' in s['tokenizers'] and s['tokenizers']['zh'] == 'zh', s" "zh tokenizer named"

# 2. Two languages, both 13a: xa (10 sentences) where B shares no word with the reference, and
# xb (20 sentences) where B is the reference; A is the reference everywhere. Per language B
# scores 0 and 100, A 100 and 100: the headline (mean) of B is 50 on the full test set and on
# every resample that has both languages, so under sacreBLEU's rule every |B - A| is 50 and p =
# 1/1001. The pooled 13a BLEU of B would be 100 exp(1 - 270/210) (180/210 160/180 140/150)^(1/4).
/usr/bin/python3 - > "$WORK/two.jsonl" <<'EOF'
import json
for i in range(30):
    lang = "xa" if i < 10 else "xb"
    ref = f"the cat number {i} sat on the mat today"
    print(json.dumps(["aaaa1", lang, i, ref, ref]))
    print(json.dumps(["bbbb2", lang, i, "zz qq ww" if lang == "xa" else ref, ref]))
EOF
fill < "$WORK/two.jsonl"
sig
check "assert s['sentences'] == 30 and abs(s['bleu_a'] - 100) < 1e-9 and abs(s['bleu_b'] - 50) < 1e-9, s" \
  "two languages: the headline of B is the mean 50"
check "assert abs(s['p_value'] - 1 / 1001) < 1e-12 and s['languages'] == ['xa', 'xb'], s" \
  "two languages: p = 1/1001"
sig --lang xa
check "assert s['sentences'] == 10 and abs(s['bleu_a'] - 100) < 1e-9 and s['bleu_b'] == 0, s" "--lang xa"
sig --lang xb
check "assert s['sentences'] == 20 and abs(s['bleu_a'] - 100) < 1e-9 and abs(s['bleu_b'] - 100) < 1e-9, s" "--lang xb"
sig --lang de
check "assert s['p_value'] is None and 'no test outputs of language de' in s['note'], s" \
  "--lang de (absent)"

# 3. The two runs must have the same sentences in the same languages.
sed 's/\["bbbb2", "xa", 3,/["bbbb2", "xb", 3,/' "$WORK/two.jsonl" | fill
sig
check "assert s['p_value'] is None and 'not of the same sentences' in s['note'], s" \
  "languages differ: no test"

# 4. An old database (outputs with an empty lang): the pooled 13a bootstrap, said so.
sed 's/"x[ab]"/""/' "$WORK/two.jsonl" | fill
sig
check "import math; assert abs(s['bleu_b'] - 100 * math.exp(1 - 270 / 210) * (180 / 210 * 160 / 180 * 140 / 150) ** 0.25) < 1e-9, s" \
  "old database: pooled 13a BLEU"
check "assert 'no language stored' in s['note'] and 'pooled' in s['note'], s" \
  "old database: the note says it is pooled"
out=$("$MOEBENCH" compare --db "$DB" aaaa1 bbbb2)
echo "$out" | grep -q "no language stored" || fail "table output lacks the pooled note: $out"
echo "compare_languages: ok"
