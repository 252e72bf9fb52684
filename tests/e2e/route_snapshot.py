#!/usr/bin/python3
"""`moebench route` against a recorded snapshot: every method and a few knob settings.

The fixture (fixtures/route_snapshot.pre-refactor.json) was recorded from the code before
issue 17's refactor of `route` (commit 3f3da2b, branch moe): the one test whose expectation is
our own output, because the point of the refactor is that nothing changes.

  route_snapshot.py MOEBENCH check    compare the binary's output with the fixture
  route_snapshot.py MOEBENCH record   (re)write the fixture from the binary's output
"""
import json
import os
import re
import subprocess
import sys

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "route_snapshot.pre-refactor.json")

L8x4 = [[0.5, -1.0, 2.0, 0.1], [1.5, 1.4, -0.3, 0.0], [0.0, 0.0, 0.0, 0.0],
        [-2.0, 3.0, 1.0, 2.9], [0.7, 0.2, 0.9, -0.4], [2.2, 2.1, 2.0, 1.9],
        [-0.5, -0.6, 4.0, 0.3], [1.0, -1.0, 1.0, -1.0]]
PAD8 = [1, 1, 1, 1, 1, 1, 0, 0]


def req(method, **kw):
    r = {"method": method, "logits": kw.pop("logits", L8x4)}
    r.update(kw)
    return r


CASES = [
    ("switch_readme", {"method": "switch", "logits": [[0, 0], [0, 0], [0, 0], [0, 0]],
                       "capacity": 2}),
    ("switch_eval_formula", req("switch")),
    ("switch_cf_min_capacity", req("switch", capacity_factor=1.0, eval_capacity_factor=0.5,
                                   min_capacity=1)),
    ("switch_training", req("switch", training=True, min_capacity=1)),
    ("switch_priority_random", req("switch", training=True, priority="random", seed=3, step=5,
                                   min_capacity=1)),
    ("switch_z_loss", req("switch", z_coef=0.1)),
    ("switch_pad", req("switch", pad=PAD8, min_capacity=0, eval_capacity_factor=1.0)),
    ("switch_capacity_0", req("switch", capacity=0)),
    ("gshard_eval", req("gshard")),
    ("gshard_training_random", req("gshard", training=True, seed=7)),
    ("gshard_all_cap2", req("gshard", training=True, second_policy="all", capacity=2)),
    ("gshard_sampling", req("gshard", training=True, second_policy="sampling", seed=2)),
    ("gshard_normalize_after", req("gshard", training=True, normalize="after", seed=4)),
    ("gshard_stochastic_eval", req("gshard", stochastic_eval=True, seed=5)),
    ("gshard_formula", req("gshard", training=True, capacity_factor=0.5, min_capacity=1,
                           second_policy="all")),
    ("gshard_eval_cf", req("gshard", eval_capacity_factor=0.5)),
    ("gshard_pad_z", req("gshard", pad=PAD8, z_coef=0.01)),
    ("ec_default", req("expert_choice")),
    ("ec_capacity1", req("expert_choice", capacity=1)),
    ("ec_k3", req("expert_choice", k=3)),
    ("ec_cf1", req("expert_choice", capacity_factor=1.0)),
    ("ec_cap1", req("expert_choice", cap=1)),
    ("ec_pad", req("expert_choice", pad=PAD8)),
    ("smoe_default", req("smoe_dropout")),
    ("smoe_k2", req("smoe_dropout", k=2)),
    ("smoe_eval_k3", req("smoe_dropout", eval_k=3)),
    ("smoe_pad", req("smoe_dropout", pad=PAD8, k=1)),
    ("uniform_default", req("uniform")),
    ("uniform_k2", req("uniform", k=2)),
    ("uniform_pad", req("uniform", pad=PAD8, k=3)),
    ("gd_eval", req("gating_dropout")),
    ("gd_p1_local", req("gating_dropout", training=True, p=1.0, workers=2, group=1)),
    ("gd_p05", req("gating_dropout", training=True, p=0.5, workers=2, group=0, seed=9, step=3)),
    ("gd_p0", req("gating_dropout", training=True, p=0.0, workers=2)),
    ("gd_gate_expert_drop", req("gating_dropout", training=True, p=1.0, workers=4, group=3,
                                gate_expert_drop=True)),
    ("gd_ignore_gate_weight", req("gating_dropout", training=True, p=1.0, workers=2,
                                  ignore_gate_weight=True)),
    ("gd_capacity", req("gating_dropout", training=True, p=1.0, workers=2, capacity=3)),
    ("err_gd_base_gshard", req("gating_dropout", base="gshard")),
    ("err_thor", req("thor")),
    ("err_dense", req("dense")),
    ("err_unknown_method", req("moe_magic")),
    ("err_unknown_knob", req("switch", bogus=1)),
    ("err_priority", req("switch", priority="sometimes")),
    ("err_second_policy", req("gshard", second_policy="never")),
    ("err_normalize", req("gshard", normalize="during")),
    ("err_base", req("gating_dropout", base="thor")),
    ("err_ragged", {"method": "switch", "logits": [[0, 0], [0]]}),
    ("err_pad_length", req("switch", pad=[1, 1])),
    ("err_no_method", {"logits": L8x4}),
    ("err_not_object", [1, 2]),
]


def run(binary, request):
    p = subprocess.run([binary, "route"], input=json.dumps(request), capture_output=True,
                       text=True)
    out = {"rc": p.returncode}
    if p.returncode == 0:
        out["stdout"] = json.loads(p.stdout)
    else:
        out["stderr"] = p.stderr.strip()
    return out


KNOWN = re.compile(r"\(known: ([^)]*)\)")


def same_result(got, want):
    """Equal, except that the registry may have gained methods since the snapshot: an "unknown
    method" message must list every method it listed then (in the same order), and may list
    more."""
    if got == want:
        return True
    g, w = got.get("stderr"), want.get("stderr")
    if g is None or w is None or {**got, "stderr": ""} != {**want, "stderr": ""}:
        return False
    mg, mw = KNOWN.search(g), KNOWN.search(w)
    if not mg or not mw or KNOWN.sub("", g) != KNOWN.sub("", w):
        return False
    then = mw.group(1).split(", ")
    now = [m for m in mg.group(1).split(", ") if m in then]
    return now == then


def main():
    binary, mode = sys.argv[1], sys.argv[2]
    results = {name: {"request": r, **run(binary, r)} for name, r in CASES}
    if mode == "record":
        doc = {"note": "pre-refactor snapshot of `moebench route` (issue 17), recorded at "
                       "commit 3f3da2b: the expectation is our own earlier output",
               "cases": results}
        with open(FIXTURE, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        print("recorded %d cases" % len(results))
        return 0
    with open(FIXTURE) as f:
        want = json.load(f)["cases"]
    bad = 0
    for name, got in results.items():
        if name not in want:
            print("FAIL %s: not in the snapshot" % name)
            bad += 1
        elif not same_result(got, want[name]):
            print("FAIL %s:\n  want %s\n  got  %s" % (name, json.dumps(want[name]),
                                                      json.dumps(got)))
            bad += 1
    print("route_snapshot: %d of %d cases differ" % (bad, len(results)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
