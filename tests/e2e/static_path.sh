#!/usr/bin/env bash
# Note [Static-shape path]: `--moe-path static` trains as `dynamic` does, from the user's side.
# The same runs (gshard, 4 workers in 2 nodes, metric windows closed at log steps and at
# checkpoints, an evaluation inside a window; bf16 switch with gradient accumulation) with each
# path log the same training losses (to rounding), the same routing statistics and FLOPs, and
# the same forward/backward bytes by class and modeled times (fp32: exactly); the static run exchanges no split
# sizes (no "counts" rows); so do 2 Gloo ranks. What the path cannot take is refused with the
# field's name: the compact exchange before anything runs, dropless routing as a failed run
# whose reason says so.
source "$(dirname "$0")/lib.bash"
DB="$WORK/s.db"
common=(train --size tiny --dataset synthetic --max-steps 12 --log-every 4
        --valid-sentences 0 --seed 3 --threads 1 --db "$DB" --quiet)
# gshard: windows closing at log steps and at checkpoints that log_every does not divide,
# with an evaluation (the dynamic path) inside a window.
gs=(--method gshard --workers 4 --workers-per-node 2 --checkpoint-every 6 --eval-every 6)
"$MOEBENCH" "${common[@]}" "${gs[@]}" --moe-path dynamic
"$MOEBENCH" "${common[@]}" "${gs[@]}" --moe-path static
sw=(--method switch --workers 2 --precision bf16 --grad-accum 2 --eval-every 100)
"$MOEBENCH" "${common[@]}" "${sw[@]}"
"$MOEBENCH" "${common[@]}" "${sw[@]}" --moe-path static
/usr/bin/python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def runs(method):
    rows = db.execute("select id, spec_json like '%static%' from runs where method = ? "
                      "and status = 'finished'", (method,)).fetchall()
    assert len(rows) == 2, rows
    return [r[0] for r in sorted(rows, key=lambda r: r[1])]  # dynamic, static
exact = ("flops_per_step", "expert_flops_per_step")
for method, tol in (("gshard", 1e-5), ("switch", 2e-2)):
    dyn, sta = runs(method)
    def metrics(run):
        return {(s, k): v for s, k, v in db.execute(
            "select step, key, value from metrics where run_id = ?", (run,))}
    a, b = metrics(dyn), metrics(sta)
    steps = sorted({s for s, k in a if s > 0 and k == "train_loss"})
    assert steps == ([4, 6, 8, 12] if method == "gshard" else [4, 8, 12]), steps
    for s in steps:
        for key in ("train_loss", "train_nll"):
            x, y = a[(s, key)], b[(s, key)]
            assert abs(x - y) <= tol * abs(x), f"{method} step {s} {key}: {x} vs {y}"
        for key in exact:  # bf16 routing may differ by a token: kept rows and their FLOPs too
            x, y = a[(s, key)], b[(s, key)]
            assert x == y if method == "gshard" else abs(x - y) <= 1e-2 * x, \
                f"{method} step {s} {key}: {x} vs {y}"
        moe = [k for (t, k) in a if t == s and k.startswith("moe.") and
               any(k.endswith(x) for x in (".dropped_frac", ".tokens", ".cross_worker_frac",
                                           ".other_node_copies_per_token"))]
        assert moe, f"{method}: no routing metrics at step {s}"
        if method == "gshard":  # fp32: the same routing, step after step
            for k in moe:
                assert abs(a[(s, k)] - b[(s, k)]) <= 1e-9, f"step {s} {k}: {a[(s, k)]} vs {b[(s, k)]}"
    def comm(run):
        return {(s, l, p): r for s, l, p, *r in db.execute(
            "select step, layer, phase, calls, bytes_local, bytes_intra_node, bytes_inter_node, "
            "wire_bytes, wire_intra_node, wire_inter_node, modeled_ms from comm where run_id = ?",
            (run,))}
    c, d = comm(dyn), comm(sta)
    assert not [k for k in d if k[2] == "counts"], "the static path exchanged split sizes"
    moved = [k for k in c if k[2] in ("fwd", "bwd")]
    assert moved and set(moved) == {k for k in d if k[2] != "allreduce"}, (moved, list(d))
    for k in moved:
        if method == "gshard":
            assert c[k] == d[k], f"{k}: dynamic {c[k]} static {d[k]}"
        else:  # bf16 routing may differ by a token: the wire (capacities) and calls may not
            assert c[k][0] == d[k][0] and c[k][4:7] == d[k][4:7], f"{k}: {c[k]} vs {d[k]}"
    assert any(c[k][2] + c[k][3] > 0 for k in moved), "no bytes crossed workers"
    print(f"{method}: {len(steps)} windows, {len(moved)} comm rows agree")
PY

# The experts' schedule recorded with each run: one batched GEMM pair on the static path.
for path in dynamic static; do
  sched=$(q "$DB" "select group_concat(distinct json_extract(libs, '$.env.expert_schedule')) from runs
                   where (spec_json like '%static%') = ('$path' = 'static')")
  if [ $path = static ]; then [ "$sched" = batched ] || fail "static runs record '$sched'"
  else [[ "$sched" = concurrent || "$sched" = serial ]] || fail "dynamic runs record '$sched'"; fi
done

# On 2 Gloo ranks (each sizing the other's buffers from its share of the batch; gradient
# accumulation trims each micro-batch to its longest sentences, so the ranks' capacities
# differ): the same losses (to rounding), routing statistics and bytes as the dynamic path on
# 2 ranks, and no split-size exchange. (A CUDA build without Gloo skips this part; a CPU build
# must have it.)
"$MOEBENCH" --version | grep -q "cuda: yes" || has_gloo || fail "no Gloo in a CPU build"
if has_gloo; then
  rk=(--method gshard --world-size 2 --ranks-per-node 1 --grad-accum 2 --eval-every 100)
  "$MOEBENCH" "${common[@]}" "${rk[@]}" > "$WORK/rk-dyn.txt" 2>&1 ||
    fail "dynamic on 2 ranks: $(tail -20 "$WORK/rk-dyn.txt")"
  "$MOEBENCH" "${common[@]}" "${rk[@]}" --moe-path static > "$WORK/rk-static.txt" 2>&1 ||
    fail "static on 2 ranks: $(tail -20 "$WORK/rk-static.txt")"
  /usr/bin/python3 - "$DB" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("select id, spec_json like '%static%', status, error from runs "
                  "where world_size = 2").fetchall()
assert len(rows) == 2 and all(r[2] == "finished" for r in rows), rows
dyn, sta = [r[0] for r in sorted(rows, key=lambda r: r[1])]
def metrics(run):
    return {(s, k): v for s, k, v in db.execute(
        "select step, key, value from metrics where run_id = ?", (run,))}
a, b = metrics(dyn), metrics(sta)
steps = sorted({s for s, k in a if s > 0 and k == "train_loss"})
assert steps == [4, 8, 12], steps
for s in steps:
    for k in ("train_loss", "aux_loss"):
        assert abs(a[(s, k)] - b[(s, k)]) <= 1e-5 * abs(a[(s, k)]), (s, k, a[(s, k)], b[(s, k)])
    moe = [k for (t, k) in a if t == s and k.startswith("moe.") and
           any(k.endswith(x) for x in (".dropped_frac", ".tokens", ".cross_worker_frac"))]
    assert moe, f"no routing metrics at step {s}"
    for k in moe + ["expert_flops_per_step"]:
        assert abs(a[(s, k)] - b[(s, k)]) <= 1e-9 * max(1, abs(a[(s, k)])), (s, k, a[(s, k)], b[(s, k)])
def comm(run):
    return {(s, l, p): r for s, l, p, *r in db.execute(
        "select step, layer, phase, calls, bytes_local, bytes_intra_node, bytes_inter_node, "
        "wire_bytes, wire_intra_node, wire_inter_node, modeled_ms from comm where run_id = ?",
        (run,))}
c, d = comm(dyn), comm(sta)
assert not [k for k in d if k[2] == "counts"], "the static ranks exchanged split sizes"
moved = [k for k in c if k[2] in ("fwd", "bwd")]
assert moved and set(moved) == {k for k in d if k[2] != "allreduce"}, (moved, list(d))
for k in moved:
    assert c[k][:7] == d[k][:7], f"{k}: dynamic {c[k]} static {d[k]}"
    assert abs(c[k][7] - d[k][7]) <= 1e-9 * max(1.0, c[k][7]), f"{k} modeled: {c[k]} vs {d[k]}"
assert any(c[k][3] > 0 for k in moved), "no bytes crossed nodes"
print(f"2 ranks: {len(steps)} windows, {len(moved)} comm rows agree")
PY
fi

# Refused before anything runs, naming the field.
out=$("$MOEBENCH" "${common[@]}" --method switch --workers 2 --exchange compact --moe-path static 2>&1) &&
  fail "compact exchange accepted with moe_path static"
grep -q "moe_path.*static needs exchange = padded" <<<"$out" || fail "unclear refusal: $out"
# Dropless routing: the run fails with the reason recorded.
"$MOEBENCH" "${common[@]}" --method topk --set dropless=true --moe-path static > "$WORK/out" 2>&1 &&
  fail "dropless topk ran with moe_path static"
grep -q "needs capacity-bounded routing" "$WORK/out" || fail "unclear failure: $(cat "$WORK/out")"
status=$(q "$DB" "select status || ' ' || error from runs where method = 'topk'")
[[ "$status" == *"failed moe_path static: needs capacity-bounded routing"* ]] || fail "recorded as: $status"
echo "static_path: ok"
