#!/usr/bin/env bash
# One step of every benchmark family (moebench_bench --smoke: small shapes, no warm-up). No
# timing assertions: the suite builds, runs, and reports the counters the bench README reads.
source "$(dirname "$0")/lib.bash"
BENCH="$(dirname "$MOEBENCH")/moebench_bench"
[ -x "$BENCH" ] || fail "no benchmark binary next to $MOEBENCH (build target moebench_bench)"
"$BENCH" --smoke --benchmark_format=json --benchmark_out="$WORK/smoke.json" \
  --benchmark_out_format=json > "$WORK/out.txt" 2>&1 || fail "moebench_bench --smoke: $(cat "$WORK/out.txt")"
gloo=0; has_gloo && gloo=1  # a CUDA build against a PyTorch wheel has no Gloo (docs/gpu.md)
/usr/bin/python3 - "$WORK/smoke.json" "$gloo" <<'PY' || fail "smoke output incomplete"
import json, sys
doc = json.load(open(sys.argv[1]))
has_gloo = sys.argv[2] == "1"
runs = {b["name"].split("/iterations")[0]: b for b in doc["benchmarks"]}
ctx = doc["context"]
need_ctx = ["OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "MALLOC_MMAP_MAX_",
            "MALLOC_TRIM_THRESHOLD_", "OPENBLAS_CORETYPE", "blas_core", "torch_threads"]
missing = [k for k in need_ctx if k not in ctx]
assert not missing, f"context lacks {missing}"
assert ctx["OMP_WAIT_POLICY"] == "PASSIVE", ctx["OMP_WAIT_POLICY"]
def check(prefix, counters):
    found = [n for n in runs if n.startswith(prefix)]
    assert found, f"no benchmark named {prefix}*"
    for n in found:
        b = runs[n]
        assert b["iterations"] == 1, (n, b["iterations"])
        for c in counters:
            assert c in b and b[c] > 0, f"{n}: counter {c} missing or not positive"
check("Router/switch/", ["tokens_per_s", "route_ms"])
check("Dispatch/", ["index_ms", "einsum_ms", "speedup", "index_ffn_ms", "einsum_ffn_ms", "speedup_ffn"])
check("Layer/top1/", ["dense_ms", "moe_ms", "ratio", "experts_ms", "experts_ratio"])
check("Layer/top2/", ["dense_ms", "moe_ms", "ratio", "experts_ms", "experts_ratio"])
if ctx.get("one_thread_blas") == "yes":  # the family needs OpenBLAS (not a wheel's MKL)
    check("ExpertGemm/", ["split_ms", "whole_ms", "ratio", "split_gflops", "whole_gflops",
                          "ratio_xW1", "ratio_xtdH"])
else:
    assert not any(n.startswith("ExpertGemm/") for n in runs), "ExpertGemm without OpenBLAS"
assert ctx["one_thread_blas"] in ("yes", "no"), ctx["one_thread_blas"]
check("TrainStep/tiny", ["tokens_per_s", "step_ms", "peak_rss_mb", "held_mb", "step_peak_mb",
                         "step_bytes_per_token"])
if has_gloo:
    check("AllToAll/gloo/", ["ms", "off_rank_MB", "GBps"])
    a2a = [runs[n] for n in runs if n.startswith("AllToAll/gloo/")][0]
    # The meter counts exactly the rows sent to the other rank: rows / 2 x d x 4 bytes.
    assert abs(a2a["off_rank_MB"] - a2a["expected_MB"]) < 1e-12, (a2a["off_rank_MB"], a2a["expected_MB"])
else:
    assert not any(n.startswith("AllToAll/") for n in runs), "all-to-all without Gloo"
PY
# --precision=bf16 (autocast) runs the layer and training-step families and says so in the
# context; the MoE layer reports its achieved TFLOP/s.
"$BENCH" --smoke --precision=bf16 --benchmark_filter='Layer/|TrainStep/' \
  --benchmark_out="$WORK/bf16.json" --benchmark_out_format=json > "$WORK/bf16.txt" 2>&1 ||
  fail "moebench_bench --smoke --precision=bf16: $(cat "$WORK/bf16.txt")"
/usr/bin/python3 - "$WORK/bf16.json" <<'PY' || fail "bf16 smoke output incomplete"
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["context"]["precision"] == "bf16", doc["context"].get("precision")
assert doc["context"]["device"] == "cpu", doc["context"].get("device")
runs = {b["name"].split("/iterations")[0]: b for b in doc["benchmarks"]}
layers = [b for n, b in runs.items() if n.startswith("Layer/")]
assert len(layers) == 2 and all(b["moe_tflops"] > 0 and b["ratio"] > 0 for b in layers), layers
assert any(n.startswith("TrainStep/") for n in runs), list(runs)
PY
if "$BENCH" --device=gpu > "$WORK/dev.txt" 2>&1; then fail "--device=gpu accepted"; fi
grep -q "unknown device 'gpu'" "$WORK/dev.txt" || fail "no message naming the device: $(cat "$WORK/dev.txt")"
# --profile=DIR makes DIR (nested, missing) and writes a trace per side that
# profile_summary.py reads; a folder it cannot make is refused with a message.
"$BENCH" --smoke --profile="$WORK/prof/a" --benchmark_filter='Layer/top1/' > "$WORK/prof.txt" 2>&1 ||
  fail "moebench_bench --profile: $(cat "$WORK/prof.txt")"
for part in dense moe; do
  trace="$WORK/prof/a/Layer_top1_T_256_d_64_E_4.$part.json"
  [ -s "$trace" ] || fail "no trace $trace: $(ls -R "$WORK/prof")"
  /usr/bin/python3 "$(dirname "$0")/../../bench/profile_summary.py" "$trace" > "$WORK/sum.txt" ||
    fail "profile_summary.py $trace"
  grep -q "top-level total" "$WORK/sum.txt" || fail "no summary: $(cat "$WORK/sum.txt")"
done
: > "$WORK/file"
if "$BENCH" --smoke --profile="$WORK/file/sub" > "$WORK/bad.txt" 2>&1; then fail "--profile under a file accepted"; fi
grep -q -- "--profile: cannot create folder" "$WORK/bad.txt" || fail "no --profile message: $(cat "$WORK/bad.txt")"
# --train-tokens adds budgets to the training-step family (--train-sizes picks the presets):
# the tensor bytes a step allocates grow with its tokens (Note [Tensor memory]).
"$BENCH" --smoke --train-sizes=tiny --train-tokens=512 --benchmark_filter='TrainStep/' \
  --benchmark_out="$WORK/tokens.json" --benchmark_out_format=json > "$WORK/tokens.txt" 2>&1 ||
  fail "moebench_bench --train-tokens=512: $(cat "$WORK/tokens.txt")"
/usr/bin/python3 - "$WORK/tokens.json" <<'PY' || fail "--train-tokens output"
import json, sys
runs = {b["name"].split("/iterations")[0]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
assert sorted(runs) == ["TrainStep/tiny", "TrainStep/tiny/tokens:512"], sorted(runs)
big, small = runs["TrainStep/tiny"], runs["TrainStep/tiny/tokens:512"]
assert big["held_mb"] == small["held_mb"], (big["held_mb"], small["held_mb"])
assert 3 * small["step_peak_mb"] < big["step_peak_mb"], (small["step_peak_mb"], big["step_peak_mb"])
PY
for bad in --train-tokens=many --train-sizes=huge; do
  if "$BENCH" "$bad" > "$WORK/bad.txt" 2>&1; then fail "$bad accepted"; fi
  grep -q -- "${bad%%=*}" "$WORK/bad.txt" || fail "no message naming ${bad%%=*}: $(cat "$WORK/bad.txt")"
done
grep -q "known: tiny" "$WORK/bad.txt" || fail "--train-sizes=huge: no list of sizes: $(cat "$WORK/bad.txt")"
# A bad flag value is refused with a message naming it.
if "$BENCH" --threads=zero > "$WORK/bad.txt" 2>&1; then fail "--threads=zero accepted"; fi
grep -q -- "--threads" "$WORK/bad.txt" || fail "no message naming --threads: $(cat "$WORK/bad.txt")"
echo ok
