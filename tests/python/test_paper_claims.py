"""Every paper manifest can answer the claims it targets ([sweep] claims of each experiments/paper_*.toml).

So can the demo (experiments/demo.toml), which targets at least six, and
experiments/modern.toml (the modern routers' comparison).

For each experiments/paper_*.toml (paper_base.toml is the shared include), the demo and
modern.toml: expand it with
`moebench sweep --dry-run --format json`, make a database with the real schema (`moebench
collect` of an empty folder creates it), insert one finished run per planned spec (exactly
those specs, with synthetic metrics, evaluations and per-sentence outputs), run the report and
fail when a targeted claim is "not measured", naming what the checker says is missing.

The synthetic values are made up and only have to exist: the verdicts themselves are tested on
hand-built results in test_report_units.py and test_claims_db.py.

Needs MOEBENCH_BIN and PYTHONPATH = the repository root; ctest sets both.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import tomllib
import unittest

from reports import claims

BIN = os.environ.get("MOEBENCH_BIN", "")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EXPERIMENTS = os.path.join(ROOT, "experiments")
SHARED_INCLUDE = "paper_base.toml"
SENTENCES = ["the cat sat on the mat today", "a small house stood by the river",
             "we walked home after the long day", "she read the letter twice and smiled"]


# The README's main job lists the claims its 10-minute sweep measures too (issue 15 item 7: at
# least six of them), and is checked like a paper manifest.
DEMO = "demo.toml"
DEMO_MIN_CLAIMS = 6
# Not a paper_* manifest, but built to answer claims the same way.
MODERN = "modern.toml"


def paper_manifests():
    """The manifests that target claims: every experiments/paper_*.toml and the demo."""
    return sorted(f for f in os.listdir(EXPERIMENTS)
                  if (f.startswith("paper_") or f == DEMO) and f.endswith(".toml")
                  and f != SHARED_INCLUDE) + [MODERN]


def targets():
    """{manifest stem: {"claims": [...]}} from each paper manifest's [sweep] claims."""
    out = {}
    for name in paper_manifests():
        with open(os.path.join(EXPERIMENTS, name), "rb") as f:
            sweep = tomllib.load(f).get("sweep", {})
        out[name[:-len(".toml")]] = {"claims": sweep.get("claims", [])}
    return out


def has_dense():
    out = subprocess.run([BIN, "methods"], capture_output=True, text=True).stdout
    return any(line.startswith("dense:") for line in out.splitlines())


def fill(db, sweep_name, planned):
    """One finished run per planned spec, with every row the report reads."""
    conn = sqlite3.connect(db)
    sweep_id = "s-" + sweep_name
    conn.execute("INSERT INTO sweeps (id, name, manifest, manifest_hash, created_at, git_commit) "
                 "VALUES (?, ?, '', 'h', '2026-01-01T00:00:00.000Z', 'test')",
                 (sweep_id, sweep_name))
    for i, p in enumerate(planned):
        spec = dict(p["spec"], sweep=sweep_id)
        rid, method, seed = p["run_id"], spec["method"], int(spec["seed"])
        width = {"tiny": 1, "small": 2, "base": 4, "large": 16}.get(spec["size"], 4)
        experts = int(spec.get("num_experts") or 8)
        conn.execute(
            "INSERT INTO runs (id, sweep_id, method, size, seed, spec_json, status, host, "
            "device, world_size, threads, params_total, params_active) VALUES "
            "(?, ?, ?, ?, ?, ?, 'finished', 'h', 'cpu', 1, 1, ?, ?)",
            (rid, sweep_id, method, spec["size"], seed, json.dumps(spec, sort_keys=True),
             width * (10_000_000 + 1_000_000 * experts), width * 10_000_000))
        steps = int(spec["max_steps"])
        every = max(int(spec["eval_every"]), 1)
        final = 20.0 + (i % 7) * 0.3 + seed * 0.1  # made up, and every run reaches 0.8 x it
        gd = method == "gating_dropout"
        for step in range(every, steps + 1, every):
            frac = step / steps
            wall = 0.1 * step
            for key, value in (("step_ms", 100.0 + i), ("train_seconds", wall),
                               ("tokens_per_s", 1000.0 + i),
                               ("comm.other_node_bytes", 0.7e6 if gd else 1e6),
                               ("comm.same_node_bytes", 1e6), ("comm.same_worker_bytes", 1e5),
                               ("comm.wire_other_node_bytes", 0.7e6 if gd else 1e6),
                               ("comm.wire_same_node_bytes", 1e6), ("comm.calls", 8.0)):
                conn.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                             (rid, step, wall, key, value))
            # Node reach of two MoE layers on workers spanning nodes (Note [Node copies]):
            # node-limited runs reach at most M nodes, with fewer other-node copies.
            if int(spec.get("workers", 1)) > int(spec.get("workers_per_node", 1)):
                limit = int(float(spec.get("knobs", {}).get("node_limit_topk", 0)))
                for layer in (0, 1):
                    for key, value in (("other_node_copies_per_token",
                                        (0.5 if limit else 0.8) + 0.01 * seed),
                                       ("nodes_per_token_max", float(limit or 2))):
                        conn.execute("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)",
                                     (rid, step, wall, f"moe.{layer}.{key}", value))
            conn.execute("INSERT INTO evals (run_id, step, wall_s, split, lang, k, bleu, "
                         "signature, n_sentences) VALUES (?, ?, ?, 'valid', 'all', 0, ?, "
                         "'sig', 4)", (rid, step, wall, final * frac))
            # Expert loads of two MoE layers (made up, uneven), for the balance claims.
            for layer in (0, 1):
                for e in range(experts):
                    conn.execute("INSERT INTO expert_load VALUES (?, ?, ?, ?, ?, 0)",
                                 (rid, step, layer, e, 100 + ((7 * e + i + layer) % 5) * 10))
        ks = [0] + [int(k) for k in spec.get("eval_k", [])]
        for k in ks:
            bleu = final + 0.5 * k
            for lang in ("all", "de"):
                conn.execute("INSERT INTO evals (run_id, step, wall_s, split, lang, k, bleu, "
                             "signature, n_sentences) VALUES (?, ?, ?, 'test', ?, ?, ?, 'sig', "
                             "4)", (rid, steps, 0.1 * steps, lang, k, bleu))
            for idx, ref in enumerate(SENTENCES):
                words = ref.split()
                # Some runs miss a word of some sentences: outputs that differ between runs.
                if (idx + i + k) % 3 == 0:
                    words[-1] = "zz"
                conn.execute("INSERT INTO outputs VALUES (?, ?, 'test', 'de', ?, ?, ?, ?)",
                             (rid, steps, k, idx, " ".join(words), ref))
    conn.commit()
    conn.close()


class PaperManifestsAnswerTheirClaims(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BIN:
            raise unittest.SkipTest("MOEBENCH_BIN is not set (run through ctest)")
        cls.work = tempfile.mkdtemp(prefix="moebench-paper-claims-")
        cls.dense = has_dense()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_every_paper_manifest_lists_known_claims(self):
        listed = targets()
        known = {c.id for c in claims.CLAIMS}
        self.assertEqual(sorted(listed), sorted(m[:-len(".toml")] for m in paper_manifests()),
                         "every paper manifest lists its claims in [sweep] claims")
        for name, entry in listed.items():
            self.assertTrue(entry.get("claims"), f"{name}: no claims listed")
            unknown = set(entry["claims"]) - known
            self.assertFalse(unknown, f"{name}: unknown claim ids {sorted(unknown)}")

    def test_the_demo_targets_at_least_six_claims(self):
        listed = targets()[DEMO[:-len(".toml")]]["claims"]
        self.assertGreaterEqual(len(set(listed)), DEMO_MIN_CLAIMS, listed)

    def test_targeted_claims_are_measured(self):
        listed = targets()
        for manifest in paper_manifests():
            name = manifest[:-len(".toml")]
            with self.subTest(manifest=manifest):
                path = os.path.join(EXPERIMENTS, manifest)
                proc = subprocess.run(
                    [BIN, "sweep", path, "--dry-run", "--format", "json", "--db",
                     os.path.join(self.work, "none.db")], capture_output=True, text=True)
                self.assertEqual(proc.returncode, 0, f"{manifest}: {proc.stderr}")
                planned = json.loads(proc.stdout)
                self.assertTrue(planned, manifest)
                empty = os.path.join(self.work, "empty-" + name)
                os.makedirs(empty)
                db = os.path.join(self.work, name + ".db")
                made = subprocess.run([BIN, "collect", empty, "--db", db], capture_output=True,
                                      text=True)
                self.assertEqual(made.returncode, 0, made.stderr)
                fill(db, name, planned)
                out = os.path.join(self.work, "out-" + name)
                rep = subprocess.run([sys.executable, "-m", "reports", "--db", db, "--out", out,
                                      "--sweep", name, "--no-figures"], capture_output=True,
                                     text=True)
                self.assertEqual(rep.returncode, 0, rep.stderr)
                with open(os.path.join(out, "summary.json")) as f:
                    rows = {r["id"]: r for r in json.load(f)["claims"]}
                for claim_id in listed[name]["claims"]:
                    row = rows[claim_id]
                    self.assertNotEqual(row["verdict"], claims.NOT_MEASURED,
                                        f"{manifest} targets {claim_id} but the checker finds "
                                        f"it not measured: {row['missing']}")
                    # The specs of the runs it compared are those of the manifest: only the
                    # seeds it lists, and at least one comparison.
                    self.assertTrue(row["comparisons"], claim_id)


if __name__ == "__main__":
    unittest.main()
