#!/usr/bin/env bash
# The query verbs of issue 21 on a run trained here plus runs with known values added by hand:
# runs --group-by with hand-computed means and t intervals, diff --only-changed, best with ties,
# show --layers / --curve, export in every format and in long form; every read verb leaves the
# database byte-identical, works on a read-only database in a folder the user cannot write (run
# as `nobody`, since root ignores permissions) without creating -wal/-shm files, and refuses a
# database of a newer schema naming its version. Also issue 16's messages: deep --where nesting,
# an unknown params key, bleu's negative smoothing and folder references, report --out a file.
source "$(dirname "$0")/lib.bash"
DB="$WORK/q.db"
"$MOEBENCH" train --method switch --size tiny --dataset synthetic --max-steps 20 --seed 1 \
  --log-every 10 --eval-every 20 --valid-sentences 8 --workers 2 --workers-per-node 1 \
  --threads 1 --db "$DB" --quiet > "$WORK/train.txt" || fail "train: $(cat "$WORK/train.txt")"
RUN=$(q "$DB" "select id from runs")
# Runs with known values (the spec of the trained run, with another lr or seed): configuration
# A = lr 0.001, seeds 1 2 3 with valid_bleu 20 22 24; B = lr 0.002, seeds 1 2 with 10 14 and
# seed 3 failed; the tie: A's seed 4 also at 24. Test outputs for diff --bleu: 2 German and 2
# French sentences, a1's hypotheses the references, b1's sharing no word with them.
/usr/bin/python3 - "$DB" "$RUN" <<'PY'
import json, sqlite3, sys
db, run = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db)
spec = json.loads(c.execute("select spec_json from runs where id = ?", (run,)).fetchone()[0])
def add(rid, lr, seed, status, bleu):
    s = dict(spec, lr=lr, seed=seed)
    c.execute("insert into runs (id, method, size, seed, spec_json, status) values "
              "(?, 'switch', 'tiny', ?, ?, ?)", (rid, seed, json.dumps(s), status))
    c.execute("insert into latest_metrics values (?, 'valid_bleu', 100, 1.0, ?)", (rid, bleu))
    c.execute("insert into metrics values (?, 100, 1.0, 'valid_bleu', ?)", (rid, bleu))
for rid, lr, seed, status, bleu in [("a1", 0.001, 1, "finished", 20), ("a2", 0.001, 2, "finished", 22),
                                    ("a3", 0.001, 3, "finished", 24), ("b1", 0.002, 1, "finished", 10),
                                    ("b2", 0.002, 2, "finished", 14), ("b3", 0.002, 3, "failed", 99)]:
    add(rid, lr, seed, status, bleu)
refs = [("de", "der hund lief heute durch den park"), ("de", "die katze sass auf der matte"),
        ("fr", "le chien a couru dans le parc"), ("fr", "le chat est assis sur le tapis")]
for idx, (lang, ref) in enumerate(refs):
    for rid, hyp in (("a1", ref), ("b1", "qq zz ww")):
        c.execute("insert into outputs values (?, 100, 'test', ?, 0, ?, ?, ?)",
                  (rid, lang, idx, hyp, ref))
c.commit()
PY
sha() { sha256sum "$DB" | cut -d' ' -f1; }
BEFORE=$(sha)
near() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4) }' ||
  fail "$3: got $1, want $2"; }

# ---- runs --group-by ---------------------------------------------------------------------------
"$MOEBENCH" runs --db "$DB" --where "id in ('a1','a2','a3','b1','b2','b3')" --group-by config \
  --metrics valid_bleu --agg mean,std,ci95,n --format json > "$WORK/g.json"
/usr/bin/python3 - "$WORK/g.json" <<'PY' || fail "group-by json: $(cat "$WORK/g.json")"
import json, sys
g = {row["lr"]: row for row in json.load(open(sys.argv[1]))}
a, b = g["0.001"], g["0.002"]
# A: 20 22 24 -> mean 22, s 2, t_{0.975,2} = 4.302653: 4.302653 * 2 / sqrt(3) = 4.968276.
assert a["valid_bleu.mean"] == 22 and a["valid_bleu.std"] == 2, a
assert abs(a["valid_bleu.ci95"] - 4.968276) < 1e-5, a
assert a["runs"] == 3 and a["seeds"] == "1,2,3" and a["missing"] == "", a
# B: 10 14 -> mean 12, s sqrt(8), t_{0.975,1} = 12.706205: 12.706205 * sqrt(8) / sqrt(2) = 25.41241.
assert b["valid_bleu.mean"] == 12 and abs(b["valid_bleu.ci95"] - 25.41241) < 1e-4, b
assert b["valid_bleu.n"] == 2 and b["missing"] == "3 (failed)", b
PY
"$MOEBENCH" runs --db "$DB" --group-by params.lr --metrics valid_bleu --format md > "$WORK/g.md"
grep -q "^| lr | runs | seeds | missing | valid_bleu.mean | valid_bleu.ci95 | valid_bleu.n |" "$WORK/g.md" ||
  fail "md header: $(cat "$WORK/g.md")"
"$MOEBENCH" runs --db "$DB" --group-by method --format csv > "$WORK/g.csv"
[ "$(wc -l < "$WORK/g.csv")" = 2 ] || fail "one switch group expected: $(cat "$WORK/g.csv")"
"$MOEBENCH" runs --db "$DB" --group-by metrics.valid_bleu 2> "$WORK/err.txt" && fail "metric key accepted"
grep -q "is a metric" "$WORK/err.txt" || fail "group-by metric: $(cat "$WORK/err.txt")"
"$MOEBENCH" runs --db "$DB" --group-by method --agg median 2> "$WORK/err.txt" && fail "median accepted"
grep -q "unknown aggregate 'median'" "$WORK/err.txt" || fail "agg: $(cat "$WORK/err.txt")"

# ---- the filter grammar through the CLI --------------------------------------------------------
[ "$("$MOEBENCH" runs --db "$DB" --where "(id ILIKE 'A%' or id = 'b1') and not seed in (2, 3)" --format csv | tail -n +2 | cut -d, -f1)" = "a1
b1" ] || fail "or / ilike / in / not"
deep=$(printf '(%.0s' $(seq 20000))
rc=0
"$MOEBENCH" runs --db "$DB" --where "${deep}seed = 1" > /dev/null 2> "$WORK/err.txt" || rc=$?
[ "$rc" = 1 ] || fail "deep nesting exited $rc, not 1"
grep -q "nested deeper than 32 levels at position 33" "$WORK/err.txt" || fail "deep: $(head -c 300 "$WORK/err.txt")"
grep -qi "sql" "$WORK/err.txt" && fail "the error echoes SQL"
"$MOEBENCH" runs --db "$DB" --where "params.colour = 'red'" 2> "$WORK/err.txt" && fail "unknown params key accepted"
grep -q "unknown key 'params.colour'" "$WORK/err.txt" || fail "params: $(cat "$WORK/err.txt")"

# ---- diff --------------------------------------------------------------------------------------
"$MOEBENCH" diff a1 b2 --db "$DB" --only-changed --format csv > "$WORK/d.csv"
grep -q "^spec,lr,0.001,0.002,0.001," "$WORK/d.csv" || fail "diff lr: $(cat "$WORK/d.csv")"
grep -q "^spec,seed,1,2,1," "$WORK/d.csv" || fail "diff seed: $(cat "$WORK/d.csv")"
grep -q "^metrics,valid_bleu,20,14,-6,-30%" "$WORK/d.csv" || fail "diff metric: $(cat "$WORK/d.csv")"
grep -q "^spec,max_steps" "$WORK/d.csv" && fail "--only-changed kept an unchanged row"
"$MOEBENCH" diff a1 b2 --db "$DB" --format csv | grep -q "^spec,max_steps,20,20,," ||
  fail "diff without --only-changed lacks the unchanged rows"
"$MOEBENCH" diff a1 b2 --db "$DB" | tail -1 | grep -q "moebench diff a1 b2 --bleu, or moebench compare a1 b2" ||
  fail "diff names its --bleu and compare"
# --bleu runs compare's paired bootstrap. By hand: per language a1 scores 100 (its outputs are
# the references, each with 4-grams) and b1 0 (no word in common), so the headlines (means over
# de and fr) are 100 and 0 on the test set and on every resample (each keeps 2 de and 2 fr
# sentences); sacreBLEU's rule: every resampled |B - A| is 100, the observed difference, so the
# centred differences are all 0, none > 100: p = (0 + 1) / (99 + 1) = 0.01.
"$MOEBENCH" diff a1 b1 --db "$DB" --only-changed --bleu --samples 99 --format json > "$WORK/db.json"
"$MOEBENCH" compare a1 b1 --db "$DB" --samples 99 --format json > "$WORK/cmp.json"
/usr/bin/python3 - "$WORK/db.json" "$WORK/cmp.json" <<'PY' || fail "diff --bleu: $(cat "$WORK/db.json")"
import json, sys
rows = {r["key"]: r for r in json.load(open(sys.argv[1])) if r["section"] == "significance"}
bleu, p, test = rows["test_bleu.all"], rows["p_value"], rows["test"]
assert abs(bleu["A"] - 100) < 1e-9 and bleu["B"] == 0 and abs(bleu["change"] + 100) < 1e-9, bleu
assert abs(p["B"] - 0.01) < 1e-15 and p["A"] is None, p
assert "99 resamples" in test["A"] and "2 languages, resampled within each language" in test["A"], test
# The same test as compare's.
cmp = json.load(open(sys.argv[2]))["significance"]
assert cmp["p_value"] == p["B"] and cmp["bleu_a"] == bleu["A"] and cmp["bleu_b"] == bleu["B"], cmp
PY
"$MOEBENCH" diff a1 b1 --db "$DB" --bleu --samples 99 | tail -1 |
  grep -q "^significance (test BLEU, all): p = 0.01; paired bootstrap (99 resamples" ||
  fail "diff --bleu table: $("$MOEBENCH" diff a1 b1 --db "$DB" --bleu --samples 99 | tail -3)"
"$MOEBENCH" diff a2 b2 --db "$DB" --bleu --format csv | grep -q "^significance,test,not measured (no per-sentence outputs stored)," ||
  fail "diff --bleu without outputs"
"$MOEBENCH" diff a1 b1 --db "$DB" --samples 5 2> "$WORK/err.txt" && fail "--samples without --bleu"
grep -q -- "--samples goes with --bleu" "$WORK/err.txt" || fail "samples: $(cat "$WORK/err.txt")"

# ---- best, with a tie --------------------------------------------------------------------------
"$MOEBENCH" best --db "$DB" --metric valid_bleu --format json > "$WORK/b.json"
/usr/bin/python3 - "$WORK/b.json" <<'PY' || fail "best: $(cat "$WORK/b.json")"
import json, sys
b = json.load(open(sys.argv[1]))
assert b["direction"] == "max" and [r["run"] for r in b["best"]] == ["a3"], b
assert b["spec"]["lr"] == 0.001 and b["spec"]["seed"] == 3, b
PY
# A tie: b3 is failed (not a candidate); a second run at 24 ties with a3.
cp "$DB" "$WORK/tie.db"
/usr/bin/python3 -c "
import sqlite3; c = sqlite3.connect('$WORK/tie.db')
c.execute(\"insert into runs (id, method, size, seed, spec_json, status) select 'a4', method, size, 4, spec_json, 'finished' from runs where id = 'a3'\")
c.execute(\"insert into latest_metrics values ('a4', 'valid_bleu', 100, 1.0, 24)\"); c.commit()"
"$MOEBENCH" best --db "$WORK/tie.db" --metric valid_bleu --format csv > "$WORK/tie.csv"
[ "$(cut -d, -f1,2 "$WORK/tie.csv" | tail -n +2)" = "1,a3
1,a4" ] || fail "ties share rank 1: $(cat "$WORK/tie.csv")"
"$MOEBENCH" best --db "$DB" --metric valid_bleu --min --where "id in ('a1', 'a2', 'a3', 'b1', 'b2')" \
  --format csv | sed -n 2p | grep -q "^1,b1," ||
  fail "best --min"
"$MOEBENCH" best --db "$DB" --metric valid_bleu --group-by params.lr --format json > "$WORK/bg.json"
/usr/bin/python3 - "$WORK/bg.json" <<'PY' || fail "best group: $(cat "$WORK/bg.json")"
import json, sys
b = json.load(open(sys.argv[1]))
top = b["best"][0]
# lr 0.001: a1 a2 a3, mean 22; lr 0.002 (the trained run's default too): 10, 14 and its BLEU.
assert top["lr"] == "0.001", b
assert b["spec"]["lr"] == "0.001" and "seed" not in b["spec"], b
PY
"$MOEBENCH" best --db "$DB" --metric valid_loss --format json | grep -q '"direction": "min"' ||
  fail "a loss is minimised by default"

# ---- show --layers and --curve (the trained run) -----------------------------------------------
"$MOEBENCH" show "$RUN" --db "$DB" --layers --format csv > "$WORK/l.csv"
[ "$(tail -n +2 "$WORK/l.csv" | wc -l)" = 2 ] || fail "tiny has 2 MoE layers: $(cat "$WORK/l.csv")"
# Each layer's tokens per expert (4 experts) sum to what expert_load stores at step 20.
for layer in $(tail -n +2 "$WORK/l.csv" | cut -d, -f1); do
  line=$(grep "^$layer,20," "$WORK/l.csv") || fail "layer $layer not at the last step 20"
  sum=$(echo "$line" | cut -d, -f3 | tr ' ' '\n' | awk '{ s += $1 } END { print s }')
  [ "$sum" = "$(q "$DB" "select sum(tokens) from expert_load where run_id = '$RUN' and layer = $layer and step = 20")" ] ||
    fail "layer $layer tokens"
  near "$(echo "$line" | cut -d, -f9)" \
    "$(q "$DB" "select value from metrics where run_id = '$RUN' and key = 'moe.$layer.cross_worker_frac' and step = 20")" \
    "layer $layer cross_worker_frac"
  near "$(echo "$line" | cut -d, -f4)" \
    "$(q "$DB" "select value from metrics where run_id = '$RUN' and key = 'moe.$layer.dropped_frac' and step = 20")" \
    "layer $layer dropped_frac"
done
"$MOEBENCH" show "$RUN" --db "$DB" --layers --step 10 | grep -q " 10 " || fail "--step 10"
"$MOEBENCH" show "$RUN" --db "$DB" --layers --step 7 2> "$WORK/err.txt" && fail "step 7 accepted"
grep -q "logged its MoE layers at steps 10, 20" "$WORK/err.txt" || fail "step 7: $(cat "$WORK/err.txt")"
"$MOEBENCH" show "$RUN" --db "$DB" --curve train_loss --format csv > "$WORK/c.csv"
[ "$(tail -n +2 "$WORK/c.csv" | wc -l)" = "$(q "$DB" "select count(*) from metrics where run_id = '$RUN' and key = 'train_loss'")" ] ||
  fail "curve rows"
"$MOEBENCH" show "$RUN" --db "$DB" --curve no_such 2> "$WORK/err.txt" && fail "unknown curve"
grep -q "has no metric 'no_such'" "$WORK/err.txt" || fail "curve error"

# ---- export ------------------------------------------------------------------------------------
"$MOEBENCH" export --db "$DB" --format md > "$WORK/e.md"
[ "$(grep -c '^| ' "$WORK/e.md")" = 8 ] || fail "md: a header and 7 runs"
"$MOEBENCH" export --db "$DB" --table history --format csv > "$WORK/h.csv"
head -1 "$WORK/h.csv" | grep -qx "run,step,wall_s,key,value" || fail "long header"
[ "$(tail -n +2 "$WORK/h.csv" | wc -l)" = "$(q "$DB" "select count(*) from metrics")" ] ||
  fail "long form: one row per logged value"
grep -q "^a2,100,1,valid_bleu,22$" "$WORK/h.csv" || fail "long row"
"$MOEBENCH" export --db "$DB" --table history --format json --where "id = 'b1'" |
  grep -q '"value": 10' || fail "long json"
"$MOEBENCH" export --db "$DB" --format parquet 2> "$WORK/err.txt" && fail "parquet"
grep -q "Debian 12 packages neither" "$WORK/err.txt" || fail "parquet message"

[ "$(sha)" = "$BEFORE" ] || fail "a read verb changed the database"

# ---- writes are refused ------------------------------------------------------------------------
"$MOEBENCH" query --db "$DB" "delete from runs" 2> "$WORK/err.txt" && fail "delete ran"
grep -q "refusing a statement that writes" "$WORK/err.txt" || fail "query write"
[ "$(sha)" = "$BEFORE" ] || fail "the refused write changed the database"

# ---- a dead `running` run is listed, never requeued: runs writes nothing -----------------------
# d1 claims to run under a process of this host that has exited: runs shows it interrupted and
# leaves the row (requeueing is the sweep runner's job); the database stays byte-identical.
cp "$DB" "$WORK/dead.db"
sleep 0 &
dead=$!
wait "$dead"
/usr/bin/python3 - "$WORK/dead.db" "$dead" <<'PY'
import socket, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("insert into runs (id, method, size, seed, spec_json, status, host, pid, started_at) "
          "select 'd1', method, size, 5, spec_json, 'running', ?, ?, '2026-01-01T00:00:00Z' "
          "from runs where id = 'a1'", (socket.gethostname(), int(sys.argv[2])))
c.commit()
PY
DEAD_SHA=$(sha256sum "$WORK/dead.db" | cut -d' ' -f1)
"$MOEBENCH" runs --db "$WORK/dead.db" --format csv > "$WORK/dead.csv" 2> "$WORK/err.txt" ||
  fail "runs with a dead run: $(cat "$WORK/err.txt")"
grep -q "^d1,switch,tiny,5,interrupted," "$WORK/dead.csv" || fail "dead run: $(cat "$WORK/dead.csv")"
grep -q ",running," "$WORK/dead.csv" && fail "a dead run is listed as running"
grep -q "note: run d1 is recorded as running but interrupted: its process $dead on .* is gone" "$WORK/err.txt" ||
  fail "dead run note: $(cat "$WORK/err.txt")"
"$MOEBENCH" show d1 --db "$WORK/dead.db" | grep -q "its process $dead on .* is gone" || fail "show d1"
[ "$(q "$WORK/dead.db" "select status from runs where id = 'd1'")" = running ] ||
  fail "runs requeued the dead run"
[ "$(sha256sum "$WORK/dead.db" | cut -d' ' -f1)" = "$DEAD_SHA" ] || fail "runs wrote the database"

# ---- a read-only database in a folder the user cannot write ------------------------------------
# Root ignores permissions: the verbs run as nobody, which can read but not write there.
RO="$WORK/ro"
mkdir "$RO"
cp "$DB" "$RO/q.db"
cp "$WORK/dead.db" "$RO/dead.db"
rm -f "$RO"/*-wal "$RO"/*-shm
chmod 755 "$WORK"
chmod 444 "$RO/q.db" "$RO/dead.db"
chmod 555 "$RO"
as_user() { if [ "$(id -u)" = 0 ]; then setpriv --reuid 65534 --regid 65534 --clear-groups "$@"; else "$@"; fi; }
if ! as_user test -x "$MOEBENCH"; then
  echo "note: the read-only-folder part is skipped: user nobody cannot run $MOEBENCH"
else
  as_user touch "$RO/probe" 2> /dev/null && fail "the folder is writable for the test user"
  for cmd in "runs" "runs --group-by config" "show $RUN" "show $RUN --layers" \
             "show $RUN --curve train_loss" "diff a1 b1" "best --metric valid_bleu" \
             "export --format json" "export --table history"; do
    # shellcheck disable=SC2086
    as_user "$MOEBENCH" $cmd --db "$RO/q.db" > "$WORK/ro.txt" 2>&1 || fail "$cmd on a read-only folder: $(tail -3 "$WORK/ro.txt")"
  done
  as_user "$MOEBENCH" query --db "$RO/q.db" "select count(*) from runs" --format csv | grep -qx 7 ||
    fail "query on a read-only folder"
  # The dead run too: before, runs tried to requeue it and failed on the read-only folder.
  for cmd in "runs" "runs --group-by config" "show d1" "diff a1 b1 --bleu --samples 10"; do
    # shellcheck disable=SC2086
    as_user "$MOEBENCH" $cmd --db "$RO/dead.db" > "$WORK/ro.txt" 2>&1 || fail "$cmd on dead.db, read-only: $(tail -3 "$WORK/ro.txt")"
  done
  grep -q "interrupted" <(as_user "$MOEBENCH" runs --db "$RO/dead.db" 2>/dev/null) || fail "dead run on read-only"
  [ -z "$(ls "$RO" | grep -v -e '^q.db$' -e '^dead.db$')" ] || fail "side files appeared: $(ls "$RO")"
fi

# ---- a newer schema is refused with its version ------------------------------------------------
cp "$DB" "$WORK/new.db"
/usr/bin/python3 -c "import sqlite3; c = sqlite3.connect('$WORK/new.db'); c.execute('pragma user_version = 99'); c.commit()"
for cmd in "runs" "runs --group-by config" "show a1" "diff a1 b1" "best --metric valid_bleu" "export"; do
  # shellcheck disable=SC2086
  "$MOEBENCH" $cmd --db "$WORK/new.db" > /dev/null 2> "$WORK/err.txt" && fail "$cmd read schema 99"
  grep -q "schema version 99, newer than version" "$WORK/err.txt" || fail "$cmd: $(cat "$WORK/err.txt")"
done

# ---- bleu and report messages (issue 16) -------------------------------------------------------
printf 'the cat sat\n' > "$WORK/ref.txt"
echo "the cat sat" | "$MOEBENCH" bleu "$WORK/ref.txt" -s floor --smooth-value=-0.5 2> "$WORK/err.txt" &&
  fail "negative smoothing accepted"
grep -q "smooth-value/-sv must be a finite number >= 0, got -0.5" "$WORK/err.txt" || fail "sv: $(cat "$WORK/err.txt")"
echo "the cat sat" | "$MOEBENCH" bleu "$WORK" 2> "$WORK/err.txt" && fail "a folder as reference"
grep -q "reference file '$WORK' is a folder" "$WORK/err.txt" || fail "folder ref: $(cat "$WORK/err.txt")"
touch "$WORK/afile"
"$MOEBENCH" report --db "$DB" --out "$WORK/afile" 2> "$WORK/err.txt" && fail "report --out a file"
grep -q "is a file; give a folder" "$WORK/err.txt" || fail "report out: $(cat "$WORK/err.txt")"
[ ! -s "$WORK/afile" ] || fail "report wrote into the file"
[ "$(sha)" = "$BEFORE" ] || fail "the database changed"
echo "query verbs: ok"
