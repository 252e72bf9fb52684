#!/usr/bin/python3
"""Turns moebench_bench JSON output (--benchmark_out=FILE --benchmark_out_format=json) into the
Markdown tables of bench/README.md. Usage: results_table.py AFTER.json [BEFORE.json]
With BEFORE.json (the same benchmarks from an older build), the layer table gets a 'before'
column."""
import json
import re
import sys

# Targets of the performance issue (CPU, 2 cores, fp32, side by side in one run).
RATIO_ALL = 1.10
RATIO_KEY = 1.05  # T 8192, d 512, E 8, top-1
SPEEDUP_E16 = 5.0
# The GPU issue's layer target (bf16, top-1, T 32768, d 2048, E 8): useful FLOPs at >= 50% of the
# device's bf16 peak and <= 1.3x the equal-FLOP dense FFN.
GPU_SHAPE = {"T": 32768, "d": 2048, "E": 8}
GPU_RATIO = 1.30
GPU_PEAK_FRACTION = 0.50


def layer_target(ctx, top, s, b):
    """The target cell of a layer row: the CPU ratios on the CPU, the GPU issue's on a GPU."""
    if not ctx.get("device", "cpu").startswith("cuda"):
        target = RATIO_KEY if (top == "top1" and s == {"T": 8192, "d": 512, "E": 8}) else RATIO_ALL
        return f"<= {target:.2f}x {mark(b['ratio'] <= target)}"
    if top != "top1" or s != GPU_SHAPE or ctx.get("precision") != "bf16":
        return "-"
    peak = float(ctx.get("peak_tflops", 0))
    fraction = b["moe_tflops"] / peak if peak > 0 else 0
    return (f"<= {GPU_RATIO:.2f}x {mark(b['ratio'] <= GPU_RATIO)}, >= {GPU_PEAK_FRACTION:.0%} "
            f"of peak {mark(fraction >= GPU_PEAK_FRACTION)}")


def load(path):
    with open(path) as f:
        doc = json.load(f)
    runs = {}
    for b in doc["benchmarks"]:
        runs[b["name"].split("/iterations")[0]] = b
    return doc["context"], runs


def shape(name):
    return {k: int(v) for k, v in re.findall(r"(T|d|E):(\d+)", name)}


def mark(ok):
    return "met" if ok else "**not met**"


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ctx, runs = load(sys.argv[1])
    before = load(sys.argv[2])[1] if len(sys.argv) > 2 else {}
    keys = ["OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "MALLOC_MMAP_MAX_",
            "MALLOC_TRIM_THRESHOLD_", "OPENBLAS_CORETYPE", "torch_threads", "torch_version",
            "moebench_steps", "device", "precision"]
    print("Environment: " + ", ".join(f"{k}={ctx.get(k, '?')}" for k in keys) +
          f"; host load average at start {ctx.get('load_avg', '?')}.\n")

    # experts_ratio: the layer's expert FFNs alone (no routing, gather or combine) / dense.
    # static: the same layer on the static-shape path (moe_path = static), ratio to dense.
    peak = float(ctx.get("peak_tflops", 0))
    print(f"Peak: {peak:.3g} TFLOP/s ({ctx.get('peak_source', 'not recorded')}).\n")
    print("| T | d | E | routing | dense ms | MoE ms | ratio | MoE TFLOP/s (% of peak) | target | "
          "experts alone | static path |" + (" before: MoE ms (ratio) |" if before else ""))
    print("|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|" + ("---:|" if before else ""))
    layer = sorted((n for n in runs if n.startswith("Layer/")),
                   key=lambda n: (shape(n)["T"], shape(n)["d"], shape(n)["E"], n))
    for n in layer:
        b, s = runs[n], shape(n)
        top = n.split("/")[1]
        tflops = b.get("moe_tflops", b["moe_gflops"] / 1e3)
        share = f" ({tflops / peak:.1%})" if peak > 0 else ""
        row = (f"| {s['T']} | {s['d']} | {s['E']} | {top} | {b['dense_ms']:.1f} | "
               f"{b['moe_ms']:.1f} | {b['ratio']:.2f}x | {tflops:.3g}{share} | "
               f"{layer_target(ctx, top, s, dict(b, moe_tflops=tflops))} | "
               + (f"{b['experts_ratio']:.2f}x |" if "experts_ratio" in b else "- |")
               + (f" {b['static_ms']:.1f} ({b['static_ratio']:.2f}x) |" if "static_ratio" in b
                  else " - |"))
        if before:
            o = before.get(n)
            row += f" {o['moe_ms']:.1f} ({o['ratio']:.2f}x) |" if o else " - |"
        print(row)

    print("\n| T | d | E | index ms | einsum ms | speedup | target | with experts: index ms | "
          "einsum ms | speedup |" + (" before: index ms (speedup) |" if before else ""))
    print("|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|" + ("---:|" if before else ""))
    for n in sorted((n for n in runs if n.startswith("Dispatch/")),
                    key=lambda n: (shape(n)["T"], shape(n)["E"])):
        b, s = runs[n], shape(n)
        target = f">= {SPEEDUP_E16:.0f}x {mark(b['speedup'] >= SPEEDUP_E16)}" if s["E"] == 16 else "-"
        row = (f"| {s['T']} | {s['d']} | {s['E']} | {b['index_ms']:.1f} | {b['einsum_ms']:.1f} | "
               f"{b['speedup']:.1f}x | {target} | {b.get('index_ffn_ms', 0):.1f} | "
               f"{b.get('einsum_ffn_ms', 0):.1f} | {b.get('speedup_ffn', 0):.1f}x |")
        if before:
            o = before.get(n)
            row += f" {o['index_ms']:.1f} ({o['speedup']:.1f}x) |" if o else " - |"
        print(row)

    print("\n| router | T | d | E | ms | tokens/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in (n for n in runs if n.startswith("Router/")):
        b, s = runs[n], shape(n)
        print(f"| {n.split('/')[1]} | {s['T']} | {s['d']} | {s['E']} | {b['route_ms']:.2f} | "
              f"{b['tokens_per_s'] / 1e3:.0f}k |")

    # held: weights, gradients, Adam moments; step peak: the tensors a step allocates on top
    # (Note [Tensor memory]).
    print("\n| size | tokens | step ms | tokens/s | peak RSS MiB | held MiB | step peak MiB | "
          "KiB per token |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in (n for n in runs if n.startswith("TrainStep/")):
        b = runs[n]
        tokens = re.search(r"tokens:(\d+)", n)
        print(f"| {n.split('/')[1]} | {tokens.group(1) if tokens else 2048} | {b['step_ms']:.0f} | "
              f"{b['tokens_per_s']:.0f} | {b['peak_rss_mb']:.0f} | {b.get('held_mb', 0):.0f} | "
              f"{b.get('step_peak_mb', 0):.0f} | {b.get('step_bytes_per_token', 0) / 1024:.0f} |")


if __name__ == "__main__":
    main()
