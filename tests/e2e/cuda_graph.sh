#!/usr/bin/env bash
# Note [Training step graphs]: `--cuda-graph on` as a user runs it, here on the CPU, where the
# graph steps run eagerly (GPU machines capture them: tests/torch/test_gpu.cpp). A run trains
# with padded shapes and a checked warm-up, logs and stores its graph counts, and learns what
# the same static run learns (one worker, no dropout or jitter: the same routing, so the same
# losses to rounding); gshard's default random second expert and aux_free's bias updates pass
# the warm-up; 2 ranks learn what one process playing 2 workers learns; what cannot be replayed
# is refused, naming the field or the method. (The warm-up's
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

# On 2 ranks (moebench's own launcher, Gloo): each rank pads its share of the batch to the
# whole batch's shape and sizes the other rank's buffers from its padded share; the run learns
# what one process playing the 2 workers learns with graph steps (the same routing: losses to
# rounding) and records the same exchanges, row for row.
# With grad_accum 2 as well: each rank's micro-batches padded alike.
if has_gloo; then
  for accum in 1 2; do
    R="$WORK/r$accum.db"  # the same options with another database
    "$MOEBENCH" "${common[@]/$DB/$R}" "${sw[@]}" --grad-accum $accum --workers 2 --cuda-graph on --quiet ||
      fail "2 workers with cuda_graph on failed"
    "$MOEBENCH" "${common[@]/$DB/$R}" "${sw[@]}" --grad-accum $accum --world-size 2 --cuda-graph on \
      > "$WORK/r.txt" 2>&1 || fail "2 ranks with cuda_graph on failed: $(tail -20 "$WORK/r.txt")"
    grep -q "\[rank 0\] .*graph steps: [0-9]* shapes, 0 captured, 0 replayed, 12 eager" "$WORK/r.txt" ||
      fail "expected rank 0's graph counts: $(cat "$WORK/r.txt")"
    /usr/bin/python3 - "$R" "$accum" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
runs = dict(db.execute("select world_size, id from runs where status = 'finished'").fetchall())
assert sorted(runs) == [1, 2], runs
def metrics(run):
    return {(s, k): v for s, k, v in db.execute(
        "select step, key, value from metrics where run_id = ?", (run,))}
a, b = metrics(runs[1]), metrics(runs[2])
for s in (4, 8, 12):
    for key in ("train_loss", "train_nll", "aux_loss", "grad_norm"):
        x, y = a[(s, key)], b[(s, key)]
        assert abs(x - y) <= 1e-5 * abs(x), f"step {s} {key}: {x} vs {y}"
    # Each sentence counts at its real lengths (Note [Compute model]), so the FLOPs are the
    # same however the batch is cut: with 2 micro-batches a rank trims its own to its longest
    # sentences and one process both blocks to the longer one.
    assert a[(s, "flops_per_step")] == b[(s, "flops_per_step")], (s, a[(s, "flops_per_step")], b[(s, "flops_per_step")])
assert b[(12, "graph_eager_steps")] == 12, b
cols = "step, layer, phase, calls, bytes_local, bytes_intra_node, bytes_inter_node, wire_bytes"
def comm(run):
    return sorted(db.execute(f"select {cols} from comm where run_id = ?", (run,)).fetchall())
ca, cb = comm(runs[1]), comm(runs[2])
assert ca and ca == cb, (len(ca), len(cb), [x for x in zip(ca, cb) if x[0] != x[1]][:3])
print(f"cuda_graph on 2 ranks ({sys.argv[1]}): losses as one process's, {len(cb)} comm rows identical")
PY
  done
fi

# Refused before anything runs, naming the field: the dynamic path.
out=$("$MOEBENCH" "${common[@]}" --method switch --moe-path dynamic --cuda-graph on 2>&1) &&
  fail "cuda_graph on accepted with moe_path dynamic"
grep -q "cuda_graph.*on needs moe_path = static" <<<"$out" || fail "unclear refusal: $out"
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
