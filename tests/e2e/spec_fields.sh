#!/usr/bin/env bash
# One definition of the run spec (Note [Run spec fields]): every field of the field table, as
# `train --list-fields` prints it, set to a non-default value, gives the same resolved spec and
# the same run id through the `train` flags, a --run-spec JSON file and a manifest section.
# A field added to the table without a value here fails the test, as does a value the table no
# longer has a field for.
source "$(dirname "$0")/lib.bash"
"$MOEBENCH" train --list-fields > "$WORK/fields.json"
/usr/bin/python3 - "$MOEBENCH" "$WORK" <<'PY'
import json, subprocess, sys
exe, work = sys.argv[1], sys.argv[2]
fields = json.load(open(f"{work}/fields.json"))
# A valid non-default value for every field (world_size 2 puts workers and workers_per_node
# at 2 too, by the rank-layout rule; they are given as 2 so that every path states them).
values = {
    "method": "gshard", "size": "small", "dataset": "files", "langs": ["de", "fr"],
    "data_dir": f"{work}/nowhere", "seed": 7, "max_steps": 33, "tokens_per_batch": 1536,
    "lr": 0.0007, "warmup": 11, "clip_norm": 0.5, "dropout": 0.2, "label_smoothing": 0.05,
    "vocab_size": 900, "num_experts": 6, "eval_every": 9, "log_every": 3,
    "checkpoint_every": 12, "valid_sentences": 17, "eval_k": [1, 2], "beam": 3,
    "length_penalty": 0.6, "lang_temperature": 2.5, "workers": 2, "workers_per_node": 2,
    "exchange": "compact", "world_size": 2, "intra_node_gbps": 600.0, "inter_node_gbps": 50.0,
    "intra_node_latency_us": 3.0, "inter_node_latency_us": 7.5, "node_nic_gbps": 200.0, "device_profile": "h100",
    "device_efficiency": 0.3, "comm_overlap": 0.5, "max_len_a": 1.25, "max_len_b": 12,
    "device": "cuda", "precision": "bf16", "shared_experts": 2, "expert_granularity": 2, "grad_accum": 2,
}
# Fields whose non-default value the first set's relations refuse (moe_path static needs the
# padded exchange, cuda_graph the static path) round-trip in a second spec of their own.
second = {"method": "switch", "moe_path": "static", "cuda_graph": "on"}
keys = [f["key"] for f in fields]
missing = [k for k in keys if k not in values and k not in second]
extra = [k for k in list(values) + list(second) if k not in keys]
assert not missing, f"fields without a test value: {missing}"
assert not extra, f"test values for fields the table lacks: {extra}"
for f in fields:
    v = values.get(f["key"], second.get(f["key"]))
    assert v != f["default"], f"{f['key']}: the test value is the default"
    if f["key"] in second and f["key"] != "method":
        assert f["key"] not in values, f"{f['key']}: in both sets"

def run(args):
    p = subprocess.run([exe] + args, capture_output=True, text=True)
    assert p.returncode == 0, f"{' '.join(args)}:\n{p.stderr}"
    return p.stdout

def round_trip(values, tag):
    """The spec `values` through flags, JSON and a manifest: one spec, one run id."""
    keys = list(values)
    # 1. flags
    flags = ["train", "--print-spec"]
    for f in fields:
        if f["key"] not in values:
            continue
        v = values[f["key"]]
        flag = f["flag"] or {"world_size": "--world-size"}[f["key"]]
        flags += [flag, ",".join(map(str, v)) if isinstance(v, list) else str(v)]
    by_flags = json.loads(run(flags))
    # 2. JSON
    with open(f"{work}/spec{tag}.json", "w") as out:
        json.dump(values, out)
    by_json = json.loads(run(["train", "--print-spec", "--run-spec", f"{work}/spec{tag}.json"]))
    # 3. manifest: per-run fields in [[runs]], the rest in their sections
    sections = {}
    for f in fields:
        if f["key"] not in values:
            continue
        sections.setdefault(f["section"], []).append(f["key"])
    def toml(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(toml(x) for x in v) + "]"
        return repr(v)
    lines = ['[sweep]', 'name = "fields"']
    for section in sorted(s for s in sections if s):
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml(values[k])}" for k in sections[section]]
    lines.append("[[runs]]")
    lines += [f"{k} = {toml(values[k])}" for k in sections.get("", [])]
    with open(f"{work}/fields{tag}.toml", "w") as out:
        out.write("\n".join(lines) + "\n")
    planned = json.loads(run(["sweep", f"{work}/fields{tag}.toml", "--dry-run", "--format", "json",
                              "--db", f"{work}/plan.db"]))
    assert len(planned) == 1, planned
    by_manifest = {"run_id": planned[0]["run_id"], "spec": planned[0]["spec"]}
    for name, got in [("flags", by_flags), ("json", by_json)]:
        spec = dict(got["spec"])
        for k in keys:
            assert spec[k] == values[k], f"{name}: {k} = {spec[k]!r}, expected {values[k]!r}"
    for name, got in [("json", by_json), ("manifest", by_manifest)]:
        a, b = got["spec"], by_flags["spec"]
        assert a == b, f"{name} and flags resolve differently:\n{a}\n{b}"
    assert by_json["run_id"] == by_flags["run_id"], (by_json["run_id"], by_flags["run_id"])
    assert by_manifest["run_id"] == by_flags["run_id"], (by_manifest["run_id"], by_flags["run_id"])
    return by_flags

by_flags = round_trip(values, "")
round_trip(second, "2")
print(f"{len(fields)} fields round-trip through flags, JSON and a manifest; run id {by_flags['run_id']}")
PY

# Note [Rank layout]: N workers without workers_per_node sit on one node of N, through flags, a
# run-spec JSON and a manifest alike, as N ranks do; workers_per_node 1 (the old default for
# --workers) stays available when stated, as another run.
layout() {  # prints "workers workers_per_node world_size run_id" of a --print-spec or dry run
  /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
s = d["spec"]
print(s["workers"], s["workers_per_node"], s.get("world_size", 1), d["run_id"])'
}
flags=$("$MOEBENCH" train --print-spec --workers 4 | layout)
explicit=$("$MOEBENCH" train --print-spec --workers 4 --workers-per-node 4 | layout)
printf '{"method": "switch", "workers": 4}\n' > "$WORK/w4.json"
json=$("$MOEBENCH" train --print-spec --run-spec "$WORK/w4.json" | layout)
printf '[sweep]\nname = "w4"\n[matrix]\nmethod = ["switch"]\n[topology]\nworkers = 4\n' > "$WORK/w4.toml"
manifest=$("$MOEBENCH" sweep "$WORK/w4.toml" --dry-run --format json --db "$WORK/plan.db" | layout)
[ "${flags% *}" = "4 4 1" ] || fail "--workers 4: expected one node of 4, got $flags"
for other in "$explicit" "$json" "$manifest"; do
  [ "$other" = "$flags" ] || fail "--workers 4 resolves as '$flags' but another entry point as '$other'"
done
one=$("$MOEBENCH" train --print-spec --workers 4 --workers-per-node 1 | layout)
[ "${one% *}" = "4 1 1" ] && [ "${one##* }" != "${flags##* }" ] ||
  fail "--workers 4 --workers-per-node 1: $one (one node of 4: $flags)"
ranks=$("$MOEBENCH" train --print-spec --world-size 4 | layout)
[ "${ranks% *}" = "4 4 4" ] || fail "--world-size 4: expected one node of 4, got $ranks"
printf '[sweep]\nname = "r4"\n[matrix]\nmethod = ["switch"]\n[topology]\nworld_size = 4\n' > "$WORK/r4.toml"
[ "$("$MOEBENCH" sweep "$WORK/r4.toml" --dry-run --format json --db "$WORK/plan.db" | layout)" = "$ranks" ] ||
  fail "a manifest's world_size = 4 resolves differently from --world-size 4"
echo "layout: --workers 4 -> $flags; --world-size 4 -> $ranks (workers, per node, world size, run id)"

# Note [GPU batch defaults]: a GPU run that states no batch gets its size's budget per device,
# the same through flags, a hand-written run-spec JSON, a manifest and the resolved spec read
# back; a stated budget is kept, in the micro-batches it needs.
batch() {  # prints "tokens_per_batch grad_accum run_id"
  /usr/bin/python3 -c 'import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print(d["spec"]["tokens_per_batch"], d["spec"].get("grad_accum", 1), d["run_id"])'
}
gpu=$("$MOEBENCH" train --print-spec --size large --device cuda --world-size 2 | batch)
[ "${gpu% *}" = "131072 4" ] || fail "large on 2 GPU ranks: expected 65536 tokens per device in 4 micro-batches, got $gpu"
printf '{"method": "switch", "size": "large", "device": "cuda", "world_size": 2}\n' > "$WORK/gpu.json"
printf '[sweep]\nname = "g"\n[matrix]\nmethod = ["switch"]\nsize = ["large"]\n[train]\ndevice = "cuda"\n[topology]\nworld_size = 2\n' > "$WORK/gpu.toml"
"$MOEBENCH" train --print-spec --size large --device cuda --world-size 2 |
  /usr/bin/python3 -c 'import json, sys; json.dump(json.load(sys.stdin)["spec"], sys.stdout)' > "$WORK/gpu_resolved.json"
for other in "$("$MOEBENCH" train --print-spec --run-spec "$WORK/gpu.json" | batch)" \
  "$("$MOEBENCH" sweep "$WORK/gpu.toml" --dry-run --format json --db "$WORK/plan.db" | batch)" \
  "$("$MOEBENCH" train --print-spec --run-spec "$WORK/gpu_resolved.json" | batch)"; do
  [ "$other" = "$gpu" ] || fail "GPU batch defaults: flags give '$gpu', another entry point '$other'"
done
stated=$("$MOEBENCH" train --print-spec --size large --device cuda --tokens-per-batch 40000 | batch)
[ "${stated% *}" = "40000 3" ] || fail "--tokens-per-batch 40000 on a large GPU run: expected 3 micro-batches, got $stated"
# A budget given over a resolved file gets its micro-batches again, unless the file states them:
# base on 2 ranks resolves to 131072 tokens in 1 micro-batch (grad_accum left out at 1), and
# 262144 over it is 131072 per rank, 2 micro-batches of base's 65536; large's file states 4.
"$MOEBENCH" train --print-spec --size base --device cuda --world-size 2 |
  /usr/bin/python3 -c 'import json, sys; json.dump(json.load(sys.stdin)["spec"], sys.stdout)' > "$WORK/base_resolved.json"
over=$("$MOEBENCH" train --print-spec --run-spec "$WORK/base_resolved.json" --tokens-per-batch 262144 | batch)
[ "${over% *}" = "262144 2" ] || fail "--tokens-per-batch 262144 over a resolved base spec on 2 ranks: $over"
kept=$("$MOEBENCH" train --print-spec --run-spec "$WORK/gpu_resolved.json" --tokens-per-batch 262144 | batch)
[ "${kept% *}" = "262144 4" ] || fail "a file's grad_accum 4 was not kept: $kept"
cpu=$("$MOEBENCH" train --print-spec --size large | batch)
[ "${cpu% *}" = "2048 1" ] || fail "a CPU run's batch changed: $cpu"
echo "GPU batch: large on 2 GPU ranks -> $gpu; CPU -> $cpu (tokens per batch, grad accum, run id)"
echo "spec_fields: ok"
