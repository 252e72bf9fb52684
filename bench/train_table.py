#!/usr/bin/python3
"""The training table of docs/gpu.md from a moebench database: per finished run its size,
precision, MoE path, batch, tokens/s, MFU (Note [MFU]) and peak memory, with the GPU issue's
training targets marked on GPU runs. Usage: train_table.py DB

tokens/s and MFU are the medians over the run's log windows after the first (which holds the
first steps' allocations and kernel selection); peak memory is the largest logged."""
import json
import sqlite3
import statistics
import sys

# The GPU issue's training targets: MFU on active parameters, bf16, one GPU.
MFU_TARGETS = {"base": 0.35, "small": 0.15}


def mark(ok):
    return "met" if ok else "**not met**"


def logged(db, run_id, key):
    """The run's values of a metric in step order."""
    rows = db.execute("select value from metrics where run_id = ? and key = ? and value is not null "
                      "order by step", (run_id, key)).fetchall()
    return [r[0] for r in rows]


def steady(values):
    """The median after the first window (all of them when there is only one)."""
    return statistics.median(values[1:] if len(values) > 1 else values) if values else 0.0


def target(device, spec, mfu):
    goal = MFU_TARGETS.get(spec["size"])
    if not device.startswith("cuda") or spec.get("precision", "fp32") != "bf16" or goal is None:
        return "-"
    return f">= {goal:.0%} {mark(mfu >= goal)}"


def path(spec):
    """The MoE path, and whether the steps were CUDA graphs (run-spec field cuda_graph)."""
    p = spec.get('moe_path', 'dynamic')
    return p + " + graphs" if spec.get('cuda_graph', 'off') == 'on' else p


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    runs = db.execute("select id, device, spec_json from runs where status = 'finished' "
                      "order by started_at").fetchall()
    if not runs:
        sys.exit(f"{sys.argv[1]}: no finished run")
    print("| size | method | precision | MoE path | tokens per step (micro-batches) | tokens/s | "
          "model TFLOP/s | MFU | peak TFLOP/s | peak MiB | target | device |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for run_id, device, spec_json in runs:
        spec = json.loads(spec_json)
        mfu = steady(logged(db, run_id, "mfu"))
        peak_mem = max(logged(db, run_id, "peak_mem_mb") or [0])
        print(f"| {spec['size']} | {spec['method']} | {spec.get('precision', 'fp32')} | "
              f"{path(spec)} | {spec.get('tokens_per_batch', 2048)} "
              f"({spec.get('grad_accum', 1)}) | {steady(logged(db, run_id, 'tokens_per_s')):.0f} | "
              f"{steady(logged(db, run_id, 'model_tflops')):.3g} | {mfu:.1%} | "
              f"{steady(logged(db, run_id, 'peak_tflops')):.3g} | {peak_mem:.0f} | "
              f"{target(device, spec, mfu)} | {device} |")


if __name__ == "__main__":
    main()
