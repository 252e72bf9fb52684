#!/usr/bin/python3
"""Summarises a Chrome trace written by moebench_bench --profile=DIR: self time per operator,
largest first, summed over threads; then, when more than one thread recorded operators (the
experts' concurrent schedule), each thread's busy time (top-level operators) and its span.
Usage: profile_summary.py TRACE.json [TOP]"""
import collections
import json
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    by_thread = collections.defaultdict(list)
    for e in spans:
        by_thread[e.get("tid")].append(e)
    self_us = collections.Counter()
    calls = collections.Counter()
    total = 0.0
    busy = {}
    for tid, evs in by_thread.items():
        before = total
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [end, name, child time]
        def close(upto):
            while stack and stack[-1][0] <= upto:
                end, name, dur, child = stack.pop()
                self_us[name] += dur - child
        for e in evs:
            close(e["ts"])
            if stack:
                stack[-1][3] += e["dur"]
            else:
                total += e["dur"]
            stack.append([e["ts"] + e["dur"], e["name"], e["dur"], 0.0])
            calls[e["name"]] += 1
        close(float("inf"))
        busy[tid] = (total - before, max(e["ts"] + e["dur"] for e in evs) - evs[0]["ts"])
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    print(f"top-level total {total / 1000:.1f} ms")
    print(f"{'self ms':>9} {'share':>6} {'calls':>6}  operator")
    for name, us in self_us.most_common(top):
        print(f"{us / 1000:9.2f} {100 * us / max(total, 1):5.1f}% {calls[name]:6d}  {name}")
    if len(busy) > 1:
        print("per thread: busy ms (top-level operators) / span ms (first start to last end)")
        for tid, (b, span) in sorted(busy.items(), key=lambda kv: -kv[1][0]):
            print(f"  thread {tid}: {b / 1000:.1f} / {span / 1000:.1f}")


if __name__ == "__main__":
    main()
