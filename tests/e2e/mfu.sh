#!/usr/bin/env bash
# MFU in every run (issue 20 item 1; Note [MFU] in harness/train/device_peak.h): a tiny run logs
# peak_tflops, model_tflops, mfu and peak_mem_mb at each log step, with
# mfu = flops_per_step / (step_ms / 1000) / peak, the peak and how it was obtained in the run's
# libs, and `moebench runs` shows the mfu column.
source "$(dirname "$0")/lib.bash"
DB="$WORK/r.db"
"$MOEBENCH" train --method switch --size tiny --max-steps 6 --log-every 3 --eval-every 6 \
  --valid-sentences 8 --workers 2 --db "$DB" > "$WORK/train.out" 2>&1 ||
  fail "train: $(tail -5 "$WORK/train.out")"
grep -q 'MFU against a peak of .* TFLOP/s (measured: best of 5 fp32 GEMMs' "$WORK/train.out" ||
  fail "no peak line: $(cat "$WORK/train.out")"
grep -q 'step 6 loss .* mfu [0-9.]*%' "$WORK/train.out" || fail "no mfu in the log line"
id=$(q "$DB" "select id from runs")
/usr/bin/python3 - "$DB" "$id" <<'PY' || fail "mfu metrics"
import json, sqlite3, sys
db, run = sys.argv[1], sys.argv[2]
con = sqlite3.connect(db)
rows = {}
for step, key, value in con.execute(
        "select step, key, value from metrics where run_id = ? and key in "
        "('mfu', 'model_tflops', 'peak_tflops', 'flops_per_step', 'step_ms', 'peak_mem_mb')",
        (run,)):
    rows.setdefault(step, {})[key] = value
assert sorted(rows) == [3, 6], rows
libs = json.loads(con.execute("select libs from runs where id = ?", (run,)).fetchone()[0])
peak = libs["compute"]["peak_tflops"] * 1e12
assert "measured" in libs["compute"]["peak_source"], libs["compute"]
for step, r in rows.items():
    assert abs(r["peak_tflops"] * 1e12 - peak) <= 1e-9 * peak, (r, peak)
    achieved = r["flops_per_step"] / (r["step_ms"] / 1000.0)
    assert abs(r["model_tflops"] * 1e12 - achieved) <= 1e-6 * achieved, (step, r)
    assert abs(r["mfu"] - achieved / peak) <= 1e-6 * r["mfu"], (step, r)
    # A tiny model at 2 threads runs below GEMM speed, and above nothing.
    assert 0.0 < r["mfu"] < 1.5, (step, r)
    assert r["peak_mem_mb"] > 10, r
print("mfu at steps 3, 6:", [round(rows[s]["mfu"], 4) for s in (3, 6)])
PY
# On ranks the step's FLOPs are summed over the ranks, so the MFU is against the peak of
# every rank's device: mfu = flops_per_step / step time / (2 x peak) on 2 Gloo ranks.
if has_gloo; then
  R="$WORK/ranks.db"
  "$MOEBENCH" train --method switch --size tiny --max-steps 4 --log-every 4 --eval-every 100 \
    --valid-sentences 0 --world-size 2 --db "$R" > "$WORK/ranks.out" 2>&1 ||
    fail "train on 2 ranks: $(tail -5 "$WORK/ranks.out")"
  /usr/bin/python3 - "$R" <<'PY' || fail "mfu on ranks"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
r = dict(con.execute("select key, value from metrics where step = 4 and key in "
                     "('mfu', 'peak_tflops', 'flops_per_step', 'step_ms')").fetchall())
achieved = r["flops_per_step"] / (r["step_ms"] / 1000.0)
want = achieved / (2 * r["peak_tflops"] * 1e12)
assert abs(r["mfu"] - want) <= 1e-6 * want, (r, want)
print(f"mfu on 2 ranks: {r['mfu']:.4f} (against 2 x {r['peak_tflops']:.4f} TFLOP/s)")
PY
fi
"$MOEBENCH" runs --db "$DB" > "$WORK/runs.txt" || fail "runs"
head -1 "$WORK/runs.txt" | grep -q ' mfu ' || fail "runs: no mfu column: $(head -1 "$WORK/runs.txt")"
echo "mfu: ok"
