#!/usr/bin/env bash
# Note [Training step graphs]: `--cuda-graph on` as a user runs it, here on the CPU, where the
# graph steps run eagerly (GPU machines capture them: tests/torch/test_gpu.cpp). A run trains
# with padded shapes and a checked warm-up, logs and stores its graph counts, and learns what
# the same static run learns (one worker, no dropout or jitter: the same routing, so the same
# losses to rounding); gshard's default random second expert and aux_free's bias updates pass
# the warm-up; what cannot be replayed is refused, naming the field or the method. (The warm-up's
# check, two steps' op traces, is tested in tests/torch/test_step_graphs.cpp.)
source "$(dirname "$0")/lib.bash"
DB="$WORK/g.db"
common=(train --size tiny --dataset synthetic --max-steps 12 --log-every 4 --eval-every 100
        --valid-sentences 0 --seed 3 --threads 1 --db "$DB" --dropout 0)
sw=(--method switch --set jitter=0 --moe-path static)
"$MOEBENCH" "${common[@]}" "${sw[@]}" --quiet
"$MOEBENCH" "${common[@]}" "${sw[@]}" --cuda-graph on > "$WORK/g.txt" 2>&1 ||
  fail "the graph run failed: $(tail -5 "$WORK/g.txt")"
grep -q "cuda_graph on the CPU: the graph steps run eagerly" "$WORK/g.txt" ||
  fail "no word of eager graph steps: $(cat "$WORK/g.txt")"
grep -qE "graph steps: [0-9]+ shapes, 0 captured, 0 replayed, 12 eager" "$WORK/g.txt" ||
  fail "no graph counts: $(cat "$WORK/g.txt")"
for m in "gshard" "aux_free --set dropless=false"; do
  # shellcheck disable=SC2086
  "$MOEBENCH" "${common[@]}" --method $m --workers 2 --moe-path static --cuda-graph on --quiet ||
    fail "$m failed with cuda_graph on"
done
/usr/bin/python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
runs = db.execute("select id, spec_json like '%cuda_graph%', status from runs "
                  "where method = 'switch'").fetchall()
assert len(runs) == 2 and all(r[2] == "finished" for r in runs), runs
plain, graph = [r[0] for r in sorted(runs, key=lambda r: r[1])]
def metrics(run):
    return {(s, k): v for s, k, v in db.execute(
        "select step, key, value from metrics where run_id = ?", (run,))}
a, b = metrics(plain), metrics(graph)
for s in (4, 8, 12):
    for key in ("train_loss", "train_nll", "aux_loss"):
        x, y = a[(s, key)], b[(s, key)]
        assert abs(x - y) <= 1e-4 * abs(x), f"step {s} {key}: {x} vs {y}"
    assert a[(s, "flops_per_step")] == b[(s, "flops_per_step")], s
assert b[(12, "graph_eager_steps")] == 12 and b[(12, "graph_shapes")] >= 1, b
assert (12, "graph_shapes") not in a
for method in ("gshard", "aux_free"):
    (status,), = db.execute("select status from runs where method = ?", (method,))
    assert status == "finished", (method, status)
PY

# Refused before anything runs, naming the field: the dynamic path, several ranks.
out=$("$MOEBENCH" "${common[@]}" --method switch --moe-path dynamic --cuda-graph on 2>&1) &&
  fail "cuda_graph on accepted with moe_path dynamic"
grep -q "cuda_graph.*on needs moe_path = static" <<<"$out" || fail "unclear refusal: $out"
out=$("$MOEBENCH" "${common[@]}" "${sw[@]}" --world-size 2 --cuda-graph on 2>&1) &&
  fail "cuda_graph on accepted on 2 ranks"
grep -q "cuda_graph.*on runs in one process" <<<"$out" || fail "unclear refusal: $out"
out=$("$MOEBENCH" "${common[@]}" "${sw[@]}" --cuda-graph yes 2>&1) && fail "cuda_graph yes accepted"
grep -q "cuda_graph" <<<"$out" || fail "unclear refusal: $out"
# A method whose routing cannot take the bounded capacity: the run fails, saying so.
"$MOEBENCH" "${common[@]}" --method gating_dropout --workers 2 --moe-path static --cuda-graph on \
  > "$WORK/out" 2>&1 &&
  fail "gating_dropout ran with cuda_graph on"
grep -q "bounded capacity" "$WORK/out" || fail "unclear failure: $(cat "$WORK/out")"
status=$(q "$DB" "select status || ' ' || error from runs where method = 'gating_dropout'")
[[ "$status" == "failed "*"bounded capacity"* ]] || fail "recorded as: $status"
echo "cuda_graph: ok"
