#!/usr/bin/env bash
# The headline BLEU of a multilingual run (the evals row with lang 'all', the trainer's
# test_bleu) is the mean of its per-language BLEU, each language scored with its own tokenizer
# and signature; chrF likewise. The stored per-sentence outputs reproduce it through
# `moebench bleu --langs`.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
# 80 steps: enough for the three synthetic languages to reach different, non-zero BLEU.
"$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 80 --seed 1 \
  --eval-every 80 --log-every 40 --valid-sentences 40 --db "$DB" --quiet > "$WORK/out.txt" ||
  fail "training failed: $(tail -5 "$WORK/out.txt")"

/usr/bin/python3 - "$DB" "$WORK" <<'PY' || fail "headline check failed"
import sqlite3, sys
db, work = sys.argv[1:]
conn = sqlite3.connect(db)
step = conn.execute("select max(step) from evals where split = 'test'").fetchone()[0]
rows = conn.execute("select lang, bleu, chrf, signature, n_sentences from evals "
                    "where split = 'test' and k = 0 and step = ? order by lang", (step,)).fetchall()
head = [r for r in rows if r[0] == "all"]
langs = [r for r in rows if r[0] != "all"]
assert len(head) == 1 and len(langs) == 3, rows
_, bleu, chrf, signature, n = head[0]
scores = [r[1] for r in langs]
assert len(set(scores)) == 3 and min(scores) > 0, f"want 3 different non-zero BLEU: {rows}"
assert abs(bleu - sum(scores) / 3) < 1e-9, (bleu, scores)
assert abs(chrf - sum(r[2] for r in langs) / 3) < 1e-9, rows
assert n == sum(r[4] for r in langs), rows
for r in langs:  # synthetic languages are neither Chinese nor Japanese: 13a
    assert r[3] == "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1", r
want = "mean of per-language BLEU: " + "; ".join(f"{r[0]}:{r[3]}" for r in langs)
assert signature == want, (signature, want)
# The test outputs of that step, for `moebench bleu --langs`.
out = conn.execute("select hyp, ref, lang from outputs where split = 'test' and k = 0 and "
                   "step = ? order by idx", (step,)).fetchall()
assert len(out) == n, (len(out), n)
for column, name in enumerate(("hyp", "ref", "langs")):
    with open(f"{work}/{name}.txt", "w", encoding="utf-8") as f:
        f.writelines(row[column].replace("\n", " ") + "\n" for row in out)
with open(f"{work}/headline.txt", "w") as f:
    f.write(f"{bleu:.6f}\n")
PY
got=$("$MOEBENCH" bleu "$WORK/ref.txt" -i "$WORK/hyp.txt" --langs "$WORK/langs.txt" -b -w 6) ||
  fail "moebench bleu --langs failed"
[ "$got" = "$(cat "$WORK/headline.txt")" ] ||
  fail "stored outputs give $got with --langs, the stored headline is $(cat "$WORK/headline.txt")"
echo "eval_headline: ok"
