"""The report on a database made here by a real short sweep of `moebench train` runs.

Needs MOEBENCH_BIN (the moebench binary) and PYTHONPATH = the repository root; ctest sets both.
One sweep of tiny synthetic runs is trained once per module (about 40 s on 2 cores) and
shared by the tests.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

from reports import claims, figures
from reports.style import METHOD_COLORS

BIN = os.environ.get("MOEBENCH_BIN", "")
COMMON = ["--size", "tiny", "--dataset", "synthetic", "--eval-every", "20",
          "--valid-sentences", "20", "--log-every", "10", "--tokens-per-batch", "1024",
          "--threads", "1", "--quiet"]
LEARNING = ["--lr", "5e-3", "--warmup", "20"]
W4 = ["--workers", "4", "--workers-per-node", "2"]  # 2 nodes of 2 workers
# (method, seed, extra flags); switch is the only method every build has.
SWEEP = [
    ("switch", 1, W4),
    ("switch", 2, W4),
    ("switch", 1, W4 + ["--set", "capacity_factor=2.0"]),
    ("switch", 1, ["--workers", "1"]),
    ("switch", 1, ["--workers", "2", "--workers-per-node", "2"]),  # one node, two workers
]
# Methods that join the sweep when this build has them (the claims that need them then get
# measured): gating dropout with p = 0.5 against its base router, switch at the same capacity
# factor; SMoE-Dropout evaluated at k = 1, 2, 4 experts (the self-slimmable curve).
OPTIONAL = [("gating_dropout", 1, W4 + ["--set", "p=0.5", "--set", "capacity_factor=1.25"]),
            ("smoe_dropout", 1, W4 + ["--eval-k", "1,2,4"])]

state = {}


def has_method(method):
    return subprocess.run([BIN, "train", "--method", method, "--print-spec"],
                          capture_output=True).returncode == 0


def train_all(db, runs, cache):
    """Trains `runs` two at a time (each on one thread)."""
    env = dict(os.environ, MOEBENCH_CACHE=cache)
    pending = list(runs)
    while pending:
        batch, pending = pending[:2], pending[2:]
        procs = [subprocess.Popen([BIN, "train", "--method", m, "--seed", str(s), "--db", db,
                                   "--max-steps", "40"] + COMMON + LEARNING + extra, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for m, s, extra in batch]
        for p, run in zip(procs, batch):
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"train {run} failed: {out}")


def setUpModule():
    if not BIN:
        raise unittest.SkipTest("MOEBENCH_BIN is not set (run through ctest)")
    work = tempfile.mkdtemp(prefix="moebench-report-")
    state["work"] = work
    state["cache"] = os.path.join(work, "cache")
    db = os.path.join(work, "sweep.db")
    runs = SWEEP + [r for r in OPTIONAL if has_method(r[0])]
    state["methods"] = sorted({r[0] for r in runs})
    train_all(db, runs, state["cache"])
    state["db"] = db


def tearDownModule():
    if "work" in state:
        shutil.rmtree(state["work"], ignore_errors=True)


def report(args, python_module=False):
    if python_module:
        cmd = [sys.executable, "-m", "reports"] + args
    else:
        cmd = [BIN, "report"] + args
    return subprocess.run(cmd, capture_output=True, text=True)


def query(db, sql, params=()):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class ReportOnSweep(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = os.path.join(state["work"], "out")
        with open(state["db"], "rb") as f:
            cls.db_bytes_before = f.read()
        cls.proc = report(["--db", state["db"], "--out", cls.out])
        if cls.proc.returncode != 0:
            raise RuntimeError(f"moebench report failed: {cls.proc.stdout}{cls.proc.stderr}")
        with open(os.path.join(cls.out, "summary.json")) as f:
            cls.summary = json.load(f)
        with open(os.path.join(cls.out, "index.html")) as f:
            cls.html = f.read()

    def table(self, tid):
        t = self.summary["tables"][tid]
        return [dict(zip(t["columns"], row)) for row in t["rows"]]

    def test_every_figure_is_a_valid_image_of_nontrivial_size(self):
        import matplotlib.image as mpimg
        self.assertEqual([f["name"] for f in self.summary["figures"]],
                         list(figures.FIGURE_NAMES))
        for name in figures.FIGURE_NAMES:
            path = os.path.join(self.out, "figures", f"{name}.png")
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", path)
            self.assertGreater(os.path.getsize(path), 10_000, path)
            pixels = mpimg.imread(path)
            self.assertGreater(pixels.shape[0], 200, path)
            self.assertGreater(pixels.shape[1], 400, path)
            self.assertGreater(pixels.std(), 0.01, f"{path} is blank")

    def test_html_references_every_figure_and_table(self):
        for name in figures.FIGURE_NAMES:
            self.assertIn(f'src="figures/{name}.png"', self.html)
        for tid in ("claims", "configurations", "runs", "missing", "network", "signatures",
                    "environment"):
            self.assertIn(f'id="table-{tid}"', self.html)
        with open(os.path.join(self.out, "summary.md")) as f:
            md = f.read()
        self.assertIn("## Claims check", md)
        self.assertIn("![Validation BLEU against training wall-clock]"
                      "(figures/bleu_vs_wallclock.png)", md)

    def test_claims_table_has_one_row_per_claim_with_a_verdict(self):
        rows = self.summary["claims"]
        self.assertEqual([r["id"] for r in rows], [c.id for c in claims.CLAIMS])
        for r in rows:
            self.assertIn(r["verdict"], claims.VERDICTS, r)
            if r["verdict"] == claims.NOT_MEASURED:
                self.assertTrue(r["missing"], f"{r['id']}: no word on what is missing")
            else:
                self.assertTrue(r["measured"], r)
        by_id = {r["id"]: r for r in rows}
        if "thor" not in state["methods"]:
            self.assertEqual(by_id["thor.switch"]["verdict"], claims.NOT_MEASURED)
            self.assertIn("thor", by_id["thor.switch"]["missing"])
        # Every run stores its per-sentence test outputs (schema 2), so the claims that pair
        # two runs on BLEU get a paired-bootstrap p-value from the C++ BLEU.
        bleu_rows = [r for r in rows if r["verdict"] != claims.NOT_MEASURED
                     and "BLEU" in r["measured"]]
        for r in bleu_rows:
            self.assertIn("one-sided paired bootstrap", r["significance"], r)
        self.assertEqual(self.summary["alpha"], 0.05)
        self.assertEqual(self.summary["claims_tested"],
                         sum(1 for r in rows if r["p"] is not None))
        self.assertEqual(len(self.table("claims")), len(claims.CLAIMS))

    def test_gating_dropout_bytes_claim_is_measured_when_the_method_exists(self):
        if "gating_dropout" not in state["methods"]:
            self.skipTest("this build has no gating_dropout")
        row = {r["id"]: r for r in self.summary["claims"]}["gd.bytes"]
        self.assertNotEqual(row["verdict"], claims.NOT_MEASURED)
        self.assertIn("1-p = 0.50", row["measured"])

    def test_self_slimmable_claim_is_measured_when_smoe_dropout_exists(self):
        if "smoe_dropout" not in state["methods"]:
            self.skipTest("this build has no smoe_dropout")
        row = {r["id"]: r for r in self.summary["claims"]}["smoe.monotone_k"]
        self.assertNotEqual(row["verdict"], claims.NOT_MEASURED)
        for k1, k2 in ((1, 2), (2, 4)):
            self.assertIn(f"k={k2} vs k={k1}: ", row["measured"])
        # The trainer stores the outputs at every k: each step has a bootstrap p-value.
        self.assertEqual(row["significance"].count("one-sided paired bootstrap"), 2)

    def test_seeds_are_aggregated_into_configurations(self):
        configs = self.table("configurations")
        # Five switch configurations (cf 2.0, W=1, W=2 and the default W=4 with two seeds).
        switch = [c for c in configs if c["method"] == "switch"]
        self.assertEqual(len(switch), 4)
        self.assertEqual(sorted(c["seeds"] for c in switch), ["1", "1", "1", "1,2"])

    def test_bytes_by_class_follow_the_topology(self):
        runs = {}
        for r in self.table("runs"):
            spec = json.loads(query(state["db"], "select spec_json from runs where id = ?",
                                    (r["run"],))[0][0])
            runs[(r["method"], int(r["seed"]), spec["workers"], spec["workers_per_node"],
                  spec["knobs"].get("capacity_factor"))] = r
        one = runs[("switch", 1, 1, 1, "1.25")]
        self.assertEqual(one["MB/step same node"], "0.000")
        self.assertEqual(one["MB/step other node"], "0.000")
        node = runs[("switch", 1, 2, 2, "1.25")]
        self.assertEqual(node["MB/step other node"], "0.000")
        self.assertGreater(float(node["MB/step same node"]), 0)
        two_nodes = runs[("switch", 1, 4, 2, "1.25")]
        self.assertGreater(float(two_nodes["MB/step other node"]), 0)
        self.assertGreater(float(two_nodes["MB/step same worker"]), 0)

    def test_runs_table_shows_mfu_and_peak_memory_from_the_logged_metrics(self):
        # MFU % is 100 x the run's mean logged mfu (Note [MFU]): a mean lies within the logged
        # values' range; peak MB is the last logged peak_mem_mb.
        for r in self.table("runs"):
            if r["status"] != "finished":
                continue
            mfu = [v for (v,) in query(state["db"], "select value from metrics where run_id = ? "
                                       "and key = 'mfu'", (r["run"],))]
            self.assertTrue(mfu, r["run"])
            shown = float(r["MFU % (measured here)"].replace(",", "")) / 100
            self.assertGreaterEqual(shown, round(min(mfu), 4) - 1e-4, r["run"])
            self.assertLessEqual(shown, round(max(mfu), 4) + 1e-4, r["run"])
            last = query(state["db"], "select value from metrics where run_id = ? and "
                         "key = 'peak_mem_mb' order by step desc limit 1", (r["run"],))[0][0]
            self.assertEqual(r["peak MB"], f"{last:,.0f}")

    def test_the_report_does_not_write_the_database(self):
        with open(state["db"], "rb") as f:
            self.assertEqual(f.read(), self.db_bytes_before)

    def test_network_defaults_are_printed(self):
        self.assertIn("100 Gb/s", self.proc.stdout)
        net = {r["parameter"]: r["value"] for r in self.table("network")}
        self.assertEqual(net["inter-node bandwidth"], "100 Gb/s")
        self.assertEqual(net["intra-node bandwidth"], "150 GB/s")
        self.assertEqual(net["inter-node latency"], "5 us")
        self.assertEqual(net["intra-node latency"], "2 us")

    def test_nothing_missing_in_a_complete_sweep(self):
        self.assertEqual(self.table("missing"), [])
        self.assertIn("Nothing is missing", self.html)

    def test_signature_and_environment_are_reported(self):
        sigs = self.table("signatures")
        self.assertTrue(sigs)
        # Per-language rows carry sacreBLEU's signature; the headline row (lang 'all') is the
        # mean of per-language BLEU and says so, with each language's signature.
        for s in sigs:
            text = s["sacreBLEU signature"]
            self.assertTrue(text.startswith("nrefs:1") or
                            text.startswith("mean of per-language BLEU: "), text)
            self.assertIn("tok:13a", text)
        self.assertIn("search=greedy", sigs[0]["decoding"])
        env = [r["value"] for r in self.table("environment")]
        self.assertTrue(any("threads" in v for v in env))


class ModeledTime(unittest.TestCase):
    """Modeled cluster time, checked against the formulas computed here from the raw metrics
    with SQL: the trainer's (runs that log comm.modeled_ms), else the report's fallback from
    the counted bytes."""

    def metric(self, run_id, key):
        return dict(query(state["db"], "select step, value from metrics where run_id = ? "
                                       "and key = ? order by step", (run_id, key)))

    def test_modeled_time_adds_the_modeled_communication_of_each_window(self):
        from reports import db as rdb
        from reports.network import DEFAULT_NETWORK
        from reports.summary import summarize
        data = rdb.load(state["db"])
        checked = 0
        for run in data.runs:
            s = summarize(run, DEFAULT_NETWORK)
            modeled = self.metric(run.id, "comm.modeled_ms")
            if modeled:
                self.assertEqual(s.comm_model, "trainer")
                step_ms = self.metric(run.id, "step_ms")
                measured = self.metric(run.id, "comm.measured_ms")
                step_modeled = self.metric(run.id, "step_modeled_ms")
                extra, prev = 0.0, 0
                for step in sorted(modeled):
                    if step in step_modeled:
                        per_step = step_modeled[step] - step_ms[step]
                    else:
                        per_step = modeled[step] - measured[step]
                    extra += (step - prev) * per_step / 1000
                    prev = step
                self.assertAlmostEqual(s.modeled_seconds(40, 3.0) - 3.0, extra, places=9)
                if run.spec["workers"] == 1:
                    self.assertEqual(sum(modeled.values()), 0.0)
                else:
                    self.assertGreater(min(modeled.values()), 0)
                checked += 1
                continue
            self.assertEqual(s.comm_model, "report")
            spans = run.spec["workers"] > run.spec["workers_per_node"]
            latency = 5e-6 if spans else 2e-6
            rows = query(state["db"], """
                select o.step, o.value, n.value, c.value from metrics o
                join metrics n on n.run_id = o.run_id and n.step = o.step
                join metrics c on c.run_id = o.run_id and c.step = o.step
                where o.run_id = ? and o.key = 'comm.wire_other_node_bytes'
                  and n.key = 'comm.wire_same_node_bytes' and c.key = 'comm.calls'
                order by o.step""", (run.id,))
            extra, prev = 0.0, 0
            for step, other, same, calls in rows:
                extra += (step - prev) * (other / 12.5e9 + same / 150e9 + calls * latency)
                prev = step
            self.assertAlmostEqual(s.modeled_seconds(40, 3.0) - 3.0, extra, places=12)
            if run.spec["workers"] == 1:
                self.assertEqual(s.modeled_seconds(40, 3.0), 3.0)
            else:
                self.assertGreater(extra, 0)
            checked += 1
        self.assertGreaterEqual(checked, len(SWEEP))


class Formats(unittest.TestCase):
    def test_svg_figures_colour_each_method_the_same_everywhere(self):
        out = os.path.join(state["work"], "svg")
        proc = report(["--db", state["db"], "--out", out, "--format", "svg"], python_module=True)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "index.html")) as f:
            html = f.read()
        # Figures drawn from per-configuration data; the others are heatmaps.
        per_method = ("bleu_vs_wallclock", "bleu_vs_steps", "comm_bytes", "bleu_vs_size",
                      "dropped_tokens", "train_loss")
        for name in figures.FIGURE_NAMES:
            path = os.path.join(out, "figures", f"{name}.svg")
            self.assertIn(f'src="figures/{name}.svg"', html)
            with open(path) as f:
                text = f.read()
            self.assertIn("<svg", text[:2000], path)
            if name == "self_slimmable" and "smoe_dropout" in state["methods"]:
                self.assertIn(METHOD_COLORS["smoe_dropout"], text)
            if name in per_method:
                for method, colour in METHOD_COLORS.items():
                    if method in state["methods"]:
                        self.assertIn(colour, text, f"{name}: no {method} colour {colour}")
                    else:
                        self.assertNotIn(colour, text, f"{name}: {method}'s colour unused")

    def test_pdf(self):
        out = os.path.join(state["work"], "pdf")
        proc = report(["--db", state["db"], "--out", out, "--format", "pdf"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for name in figures.FIGURE_NAMES:
            with open(os.path.join(out, "figures", f"{name}.pdf"), "rb") as f:
                self.assertEqual(f.read(5), b"%PDF-")


class Significance(unittest.TestCase):
    def test_bleu_claims_use_paired_bootstrap_when_outputs_are_stored(self):
        if "gating_dropout" not in state["methods"]:
            self.skipTest("this build has no gating_dropout, so no BLEU claim is measured")
        path = os.path.join(state["work"], "outputs.db")
        src = sqlite3.connect(f"file:{state['db']}?mode=ro", uri=True)
        conn = sqlite3.connect(path)
        src.backup(conn)
        src.close()
        gd = conn.execute("select id from runs where method = 'gating_dropout'").fetchone()[0]
        base = conn.execute("select id from runs where method = 'switch' and seed = 1 and "
                            "json_extract(spec_json, '$.workers') = 4 and "
                            "json_extract(spec_json, '$.knobs.capacity_factor') = '1.25'"
                            ).fetchone()[0]
        # Gating dropout's outputs are the references (BLEU 100 on any resample of these
        # six-word sentences), its base router's share no word with them (BLEU 0): no resample
        # has gating dropout at or below its base, so the one-sided p = (0 + 1) / (1000 + 1).
        conn.execute("delete from outputs")  # replace the stored outputs with hand-made ones
        for i in range(20):
            ref = f"sentence {i} of the test set"
            conn.execute("insert into outputs values (?, 40, 'test', 'xa', 0, ?, ?, ?)",
                         (gd, i, ref, ref))
            conn.execute("insert into outputs values (?, 40, 'test', 'xa', 0, ?, 'qq zz', ?)",
                         (base, i, ref))
        conn.commit()
        conn.close()
        out = os.path.join(state["work"], "outputs")
        proc = report(["--db", path, "--out", out])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "summary.json")) as f:
            row = {r["id"]: r for r in json.load(f)["claims"]}["gd.bleu"]
        self.assertEqual(len(row["comparisons"]), 1)
        self.assertEqual(row["comparisons"][0]["p"], 1 / 1001)
        self.assertIn("over 20 pooled test sentences of 1 seed", row["significance"])
        self.assertIn("pooled BLEU 100.00 vs 0.00", row["significance"])


class IncompleteSweep(unittest.TestCase):
    """A sweep with a failed run and runs its manifest asks for that never ran."""

    SWEEP_ID = "s-incomplete"
    MANIFEST = ('[sweep]\nname = "incomplete"\n[matrix]\nmethod = ["switch", "gshard"]\n'
                'size = ["tiny"]\nseed = [1, 2, 3]\n')

    def train_in_sweep(self, db, seed, extra, learning=LEARNING):
        spec = json.loads(subprocess.run(
            [BIN, "train", "--method", "switch", "--seed", str(seed), "--print-spec"] + COMMON +
            learning + extra, capture_output=True, text=True, check=True).stdout)["spec"]
        spec["sweep"] = self.SWEEP_ID
        path = os.path.join(state["work"], f"spec{seed}.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        return subprocess.run([BIN, "train", "--run-spec", path, "--db", db, "--threads", "1",
                               "--quiet"], capture_output=True, text=True,
                              env=dict(os.environ, MOEBENCH_CACHE=state["cache"]))

    def test_failed_and_missing_runs_are_named_and_a_rerun_picks_up_new_runs(self):
        db = os.path.join(state["work"], "incomplete.db")
        short = ["--max-steps", "20"]
        self.assertEqual(self.train_in_sweep(db, 1, short).returncode, 0)
        # A real failure: the loss overflows to NaN and the run is recorded failed.
        failed = self.train_in_sweep(db, 2, short, ["--lr", "1e6", "--warmup", "1",
                                                    "--clip-norm", "1e9"])
        self.assertNotEqual(failed.returncode, 0)
        conn = sqlite3.connect(db)
        conn.execute("insert into sweeps (id, name, manifest, manifest_hash, created_at, "
                     "git_commit) values (?, 'incomplete', ?, 'h', '2026-01-01T00:00:00.000Z', "
                     "'abc123')", (self.SWEEP_ID, self.MANIFEST))
        conn.commit()
        conn.close()
        out = os.path.join(state["work"], "incomplete")
        proc = report(["--db", db, "--out", out, "--sweep", "incomplete"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        missing = [dict(zip(summary["tables"]["missing"]["columns"], r))
                   for r in summary["tables"]["missing"]["rows"]]
        failed_rows = [m for m in missing if m["status"] == "failed"]
        self.assertEqual(len(failed_rows), 1)
        self.assertIn("nan", failed_rows[0]["what is missing"].lower())
        absent = sorted((m["method"], m["seed"]) for m in missing if m["status"] == "missing")
        # Seed 2 of switch is in the database (failed), so it is not "missing".
        self.assertEqual(absent, [("gshard", "1"), ("gshard", "2"), ("gshard", "3"),
                                  ("switch", "3")])
        self.assertEqual(summary["runs"], 2)
        self.assertEqual(summary["finished"], 1)
        with open(os.path.join(out, "index.html")) as f:
            self.assertIn("in the manifest of sweep incomplete", f.read())
        for name in figures.FIGURE_NAMES:
            self.assertTrue(os.path.exists(os.path.join(out, "figures", f"{name}.png")))
        # The missing switch seed 3 arrives: the report regenerates with it.
        self.assertEqual(self.train_in_sweep(db, 3, short).returncode, 0)
        proc = report(["--db", db, "--out", out, "--sweep", "incomplete"])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["finished"], 2)
        absent = [r for r in summary["tables"]["missing"]["rows"] if r[3] == "missing"]
        self.assertEqual(len(absent), 3)

    def test_unknown_sweep_is_an_error_naming_it(self):
        proc = report(["--db", state["db"], "--out", os.path.join(state["work"], "x"),
                       "--sweep", "no-such-sweep"])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("no sweep named or with id 'no-such-sweep'", proc.stderr)


class SchemaVersions(unittest.TestCase):
    """Databases this report cannot read are refused with the reason; none is modified."""

    def copy_db(self, name):
        path = os.path.join(state["work"], name)
        src = sqlite3.connect(f"file:{state['db']}?mode=ro", uri=True)
        dst = sqlite3.connect(path)
        src.backup(dst)
        src.close()
        return dst, path

    def refused(self, path, expected):
        with open(path, "rb") as f:
            before = f.read()
        proc = report(["--db", path, "--out", os.path.join(state["work"], "refused")])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn(expected, proc.stderr)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), before, "the refused file was modified")

    def test_version_0_is_refused(self):
        path = os.path.join(state["work"], "v0.db")
        conn = sqlite3.connect(path)
        conn.execute("create table runs (id text)")
        conn.commit()
        conn.close()
        self.refused(path, "schema version 0")

    def test_a_newer_version_is_refused(self):
        conn, path = self.copy_db("v5.db")
        conn.execute("pragma user_version = 5")
        conn.commit()
        conn.close()
        self.refused(path, "schema version 5 is newer than version 4")

    def test_a_missing_column_is_named(self):
        conn, path = self.copy_db("nocol.db")
        conn.execute("alter table evals drop column signature")
        conn.commit()
        conn.close()
        self.refused(path, "table 'evals' has no column 'signature'")

    def test_not_a_database(self):
        path = os.path.join(state["work"], "text.db")
        with open(path, "w") as f:
            f.write("hello\n" * 100)
        self.refused(path, "not a readable SQLite database")

    def test_missing_file(self):
        proc = report(["--db", os.path.join(state["work"], "absent.db"), "--out",
                       os.path.join(state["work"], "o")])
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("absent.db: no such database file", proc.stderr)


if __name__ == "__main__":
    unittest.main()
