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
# On 2 Gloo ranks (each sizing the other's buffers from its share of the batch; gradient
# accumulation trims each micro-batch to its longest sentences, so the ranks' capacities
# differ). A CUDA build without Gloo skips this pair; a CPU build must have it.
"$MOEBENCH" --version | grep -q "cuda: yes" || has_gloo || fail "no Gloo in a CPU build"
ranks=0
if has_gloo; then
  ranks=1
  rk=(--method gshard --world-size 2 --ranks-per-node 1 --grad-accum 2 --eval-every 100)
  for path in dynamic static; do
    "$MOEBENCH" "${common[@]}" "${rk[@]}" --moe-path $path > "$WORK/rk-$path.txt" 2>&1 ||
      fail "$path on 2 ranks: $(tail -20 "$WORK/rk-$path.txt")"
  done
fi
/usr/bin/python3 - "$DB" "$ranks" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def pair(where):  # (dynamic, static) run ids
    rows = db.execute("select id, spec_json like '%static%' from runs where status = 'finished' "
                      "and " + where).fetchall()
    assert len(rows) == 2, (where, rows)
    return [r[0] for r in sorted(rows, key=lambda r: r[1])]
# label, runs, loss tolerance, logged steps, fp32 (the same routing: exact counts)
cases = [("gshard", "method = 'gshard' and world_size = 1", 1e-5, [4, 6, 8, 12], True),
         ("switch bf16", "method = 'switch'", 2e-2, [4, 8, 12], False)]
if sys.argv[2] == "1":
    cases.append(("gshard, 2 ranks", "world_size = 2", 1e-5, [4, 8, 12], True))
for label, where, tol, want_steps, fp32 in cases:
    dyn, sta = pair(where)
    def metrics(run):
        return {(s, k): v for s, k, v in db.execute(
            "select step, key, value from metrics where run_id = ?", (run,))}
    a, b = metrics(dyn), metrics(sta)
    steps = sorted({s for s, k in a if s > 0 and k == "train_loss"})
    assert steps == want_steps, (label, steps)
    for s in steps:
        for key in ("train_loss", "train_nll", "aux_loss"):
            x, y = a[(s, key)], b[(s, key)]
            assert abs(x - y) <= tol * abs(x), f"{label} step {s} {key}: {x} vs {y}"
        for key in ("flops_per_step", "expert_flops_per_step"):
            # bf16 routing may differ by a token: kept rows and their FLOPs too
            x, y = a[(s, key)], b[(s, key)]
            assert x == y if fp32 else abs(x - y) <= 1e-2 * x, f"{label} step {s} {key}: {x} vs {y}"
        moe = [k for (t, k) in a if t == s and k.startswith("moe.") and
               any(k.endswith(x) for x in (".dropped_frac", ".tokens", ".cross_worker_frac",
                                           ".other_node_copies_per_token"))]
        assert moe, f"{label}: no routing metrics at step {s}"
        if fp32:  # the same routing, step after step
            for k in moe:
                assert abs(a[(s, k)] - b[(s, k)]) <= 1e-9, f"{label} step {s} {k}: {a[(s, k)]} vs {b[(s, k)]}"
    def comm(run):
        return {(s, l, p): r for s, l, p, *r in db.execute(
            "select step, layer, phase, calls, bytes_local, bytes_intra_node, bytes_inter_node, "
            "wire_bytes, wire_intra_node, wire_inter_node, modeled_ms from comm where run_id = ?",
            (run,))}
    c, d = comm(dyn), comm(sta)
    assert not [k for k in d if k[2] == "counts"], f"{label}: the static path exchanged split sizes"
    moved = [k for k in c if k[2] in ("fwd", "bwd")]
    assert moved and set(moved) == {k for k in d if k[2] != "allreduce"}, (moved, list(d))
    for k in moved:
        if fp32:
            assert c[k][:7] == d[k][:7] and abs(c[k][7] - d[k][7]) <= 1e-9 * max(1.0, c[k][7]), \
                f"{label} {k}: dynamic {c[k]} static {d[k]}"
        else:  # bf16 routing may differ by a token: the wire (capacities) and calls may not
            assert c[k][0] == d[k][0] and c[k][4:7] == d[k][4:7], f"{label} {k}: {c[k]} vs {d[k]}"
    assert any(c[k][2] + c[k][3] > 0 for k in moved), f"{label}: no bytes crossed workers"
    print(f"{label}: {len(steps)} windows, {len(moved)} comm rows agree")
PY

# The experts' schedule recorded with each run: one batched GEMM pair on the static path.
for path in dynamic static; do
  sched=$(q "$DB" "select group_concat(distinct json_extract(libs, '$.env.expert_schedule')) from runs
                   where (spec_json like '%static%') = ('$path' = 'static')")
  if [ $path = static ]; then [ "$sched" = batched ] || fail "static runs record '$sched'"
  else [[ "$sched" = concurrent || "$sched" = serial ]] || fail "dynamic runs record '$sched'"; fi
done

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
