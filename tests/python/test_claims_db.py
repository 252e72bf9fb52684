"""The claims' verdicts on constructed databases (the real schema, from `moebench collect` of
an empty folder) with hand-made per-sentence outputs, through the whole report: the BLEU test
is the C++ paired bootstrap (`moebench bleu`), whose p-values are computed here by hand.

Needs MOEBENCH_BIN and PYTHONPATH = the repository root; ctest sets both.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MOEBENCH_BIN", "")
N = 20  # test sentences
SAMPLES = 1000  # the report's default bootstrap resamples

REFS = [f"sentence number {i} of the test set" for i in range(N)]


def spec(method, seed, knobs=None):
    return {"method": method, "size": "tiny", "seed": seed, "dataset": "synthetic",
            "max_steps": 100, "knobs": dict(knobs or {}), "workers": 1, "workers_per_node": 1}


class ClaimsOnConstructedDatabases(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not BIN:
            raise unittest.SkipTest("MOEBENCH_BIN is not set (run through ctest)")
        cls.work = tempfile.mkdtemp(prefix="moebench-claims-db-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def make_db(self, name, runs, langs=None, sigs=None):
        """runs: (id, spec, {lang: test BLEU}, [hyp per sentence] or None); langs: the
        language of each sentence (default xa); sigs: lang -> evals signature."""
        langs = langs if langs is not None else ["xa"] * N
        sigs = sigs or {}
        empty = os.path.join(self.work, "empty-" + name)
        os.makedirs(empty)
        db = os.path.join(self.work, name + ".db")
        subprocess.run([BIN, "collect", empty, "--db", db], check=True, capture_output=True)
        conn = sqlite3.connect(db)
        for rid, sp, bleu, hyps in runs:
            conn.execute("INSERT INTO runs (id, method, size, seed, spec_json, status) VALUES "
                         "(?, ?, 'tiny', ?, ?, 'finished')",
                         (rid, sp["method"], sp["seed"], json.dumps(sp)))
            conn.execute("INSERT INTO evals (run_id, step, wall_s, split, lang, k, bleu, "
                         "signature, n_sentences) VALUES (?, 100, 1.0, 'valid', 'all', 0, 1.0, "
                         "'sig', ?)", (rid, N))
            for lang, b in bleu.items():
                conn.execute("INSERT INTO evals (run_id, step, wall_s, split, lang, k, bleu, "
                             "signature, n_sentences) VALUES (?, 100, 1.0, 'test', ?, 0, ?, "
                             "?, ?)", (rid, lang, b, sigs.get(lang, "sig"), N))
            for i, hyp in enumerate(hyps or []):
                conn.execute("INSERT INTO outputs VALUES (?, 100, 'test', ?, 0, ?, ?, ?)",
                             (rid, langs[i], i, hyp, REFS[i]))
        conn.commit()
        conn.close()
        return db

    def report(self, db, *extra, binary=BIN):
        out = os.path.join(self.work, "out-" + os.path.basename(db))
        proc = subprocess.run([sys.executable, "-m", "reports", "--db", db, "--out", out,
                               "--no-figures"] + list(extra), capture_output=True, text=True,
                              env=dict(os.environ, MOEBENCH_BIN=binary))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(out, "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(out, "summary.md")) as f:
            md = f.read()
        return summary, {r["id"]: r for r in summary["claims"]}, md

    def test_one_seed_one_different_sentence_is_not_significant(self):
        # thor and switch decode the same 20 sentences identically but for sentence 0, where
        # thor is right and switch has one wrong word (same length). A resample scores thor
        # above switch exactly when it contains sentence 0; the one-sided p counts resamples
        # with thor <= switch: the share without sentence 0, (1 - 1/20)^20 = 0.358 in
        # expectation (binomial sd over 1000 resamples: 0.015). Before, this was "supported":
        # every comparison went the claimed way, whatever the p-value.
        switch_hyps = list(REFS)
        switch_hyps[0] = "sentence number 0 of the test zz"
        db = self.make_db("one-seed", [
            ("t1", spec("thor", 1), {"all": 12.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 11.0}, switch_hyps)])
        summary, rows, md = self.report(db)
        row = rows["thor.switch"]
        self.assertEqual(row["verdict"], "direction agrees, not significant")
        self.assertAlmostEqual(row["p"], (1 - 1 / N) ** N, delta=0.05)
        self.assertIn("1 seed", row["significance"])
        self.assertEqual(row["seeds"], 1)
        # The sentence-level interval of thor - switch: 0 on the resamples without sentence 0
        # (35.8% of them, more than 2.5%), so its lower end is 0; above 0 on the others.
        self.assertIn("sentence-level 95% CI [+0.00, +", row["measured"])
        self.assertNotIn("sentence-level 95% CI [+0.00, +0.00]", row["measured"])
        self.assertIn("alpha = 0.05", md)
        self.assertIn("Holm-Bonferroni", md)

    def test_a_clear_difference_is_supported_with_the_exact_p(self):
        # thor's outputs are the references (BLEU 100 on any resample: every sentence has
        # 4-grams), switch's share no word with them (BLEU 0): no resample has thor <= switch,
        # so p = (0 + 1) / (1000 + 1).
        db = self.make_db("clear", [
            ("t1", spec("thor", 1), {"all": 30.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 10.0}, ["qq zz"] * N)])
        summary, rows, _ = self.report(db)
        row = rows["thor.switch"]
        self.assertEqual(row["verdict"], "supported")
        self.assertEqual(row["p"], 1 / (SAMPLES + 1))
        self.assertEqual(row["p_holm"], 1 / (SAMPLES + 1))  # the only claim with a test
        self.assertEqual(summary["claims_tested"], 1)
        self.assertIn("+20.00 BLEU", row["measured"])
        self.assertIn("headline = mean of per-language pooled BLEU 100.00 vs 0.00",
                      row["significance"])
        # One seed has no interval over seeds, but the bootstrap's: every resample has
        # thor - switch = 100 - 0.
        self.assertIn("no interval with 1 seed; sentence-level 95% CI [+100.00, +100.00]",
                      row["measured"])
        # The same through bleu_test directly: every resample has thor - switch = 100 - 0.
        from reports import bleu_test

        class Run:
            def __init__(self, rid):
                self.id = rid
        r = bleu_test.make_bleu_test(db, BIN)([((Run("t1"), 0), (Run("s1"), 0))])
        self.assertEqual((r.p, r.languages, r.sentences), (1 / (SAMPLES + 1), 1, N))
        for v in (r.diff_mean, r.diff_lo, r.diff_hi):
            self.assertAlmostEqual(v, 100, places=9)
        # A stricter alpha than 1/1001 makes the same result not significant.
        _, strict, _ = self.report(db, "--alpha", "0.0005")
        self.assertEqual(strict["thor.switch"]["verdict"], "direction agrees, not significant")

    def test_the_headline_mean_over_languages_is_tested(self):
        # Sentences 0-9 are language xa (scored with 13a), 10-19 Chinese (zh, scored with the
        # zh tokenizer, as the trainer's signatures say). On xa thor is right and switch shares
        # no word (BLEU 100 and 0); on zh the two differ in sentence 10 only, where switch's
        # last word is wrong: of its 70 1-grams 69 match, of 60 2-grams 59, 50 3-grams 49, 40
        # 4-grams 39. The headline is the mean: thor (100 + 100) / 2, switch (0 + zh) / 2 on
        # every resample with both languages, so none has thor <= switch: p = 1/1001 (the
        # per-tokenizer test before took the larger p, the zh one, 0.9^10 = 0.35).
        langs = ["xa"] * 10 + ["zh"] * 10
        thor = list(REFS)
        switch = ["qq zz"] * 10 + list(REFS[10:])
        switch[10] = "sentence number 10 of the test zz"
        zh = 100 * (69 / 70 * 59 / 60 * 49 / 50 * 39 / 40) ** 0.25
        sigs = {"xa": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1",
                "zh": "nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.3.1"}
        db = self.make_db("tokenizers", [
            ("t1", spec("thor", 1), {"all": 100.0, "xa": 100.0, "zh": 100.0}, thor),
            ("s1", spec("switch", 1), {"all": zh / 2, "xa": 0.0, "zh": zh}, switch)],
            langs=langs, sigs=sigs)
        _, rows, _ = self.report(db)
        row = rows["thor.switch"]
        self.assertEqual(row["p"], 1 / (SAMPLES + 1))
        self.assertIn("headline = mean over 2 languages (xa: tok 13a, zh: tok zh)",
                      row["significance"])
        self.assertIn(f"headline = mean of per-language pooled BLEU 100.00 vs {zh / 2:.2f}",
                      row["significance"])
        self.assertEqual(row["verdict"], "supported")

    def test_a_tokenizer_other_than_the_codes_is_not_tested(self):
        # The trainer scored language xz with zh; moebench bleu --langs would score the code xz
        # with 13a: no test rather than a test of another score.
        langs = ["xa"] * 10 + ["xz"] * 10
        sigs = {"xa": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1",
                "xz": "nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|version:2.3.1"}
        db = self.make_db("odd-tokenizer", [
            ("t1", spec("thor", 1), {"all": 30.0, "xa": 40.0, "xz": 20.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 10.0, "xa": 0.0, "xz": 19.0}, ["qq zz"] * N)],
            langs=langs, sigs=sigs)
        _, rows, _ = self.report(db)
        row = rows["thor.switch"]
        self.assertIsNone(row["p"])
        self.assertIn("the trainer scored xz with tok zh, moebench bleu --langs with 13a",
                      row["significance"])

    def test_japanese_signatures_and_the_mean_row(self):
        # Japanese is signed tok:ja-mecab-0.996-IPA, which moebench bleu takes as -tok ja-mecab;
        # the 'all' row's mean signature (one tok per language) names no tokenizer of its own.
        # thor is right and switch shares no word: p = 1/1001, headline 100 vs 0.
        ja = "nrefs:1|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|smooth:exp|version:2.3.1"
        de = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1"
        for name, langs, sigs, bleu in (
                ("ja-only", ["ja"] * N, {"ja": ja, "all": ja}, {"all": 30.0, "ja": 30.0}),
                ("ja-de", ["ja"] * 10 + ["de"] * 10,
                 {"ja": ja, "de": de, "all": f"mean of per-language BLEU: de:{de}; ja:{ja}"},
                 {"all": 30.0, "ja": 30.0, "de": 30.0})):
            db = self.make_db(name, [
                ("t1", spec("thor", 1), bleu, list(REFS)),
                ("s1", spec("switch", 1), {k: 0.0 for k in bleu}, ["qq zz"] * N)],
                langs=langs, sigs=sigs)
            _, rows, _ = self.report(db)
            row = rows["thor.switch"]
            self.assertEqual(row["p"], 1 / (SAMPLES + 1), (name, row["significance"]))
            self.assertIn("ja: tok ja-mecab-0.996-IPA", row["significance"])
            self.assertIn("headline = mean of per-language pooled BLEU 100.00 vs 0.00",
                          row["significance"])

    def test_outputs_without_a_language_are_pooled_and_said_so(self):
        # A database from before per-language scoring: outputs with lang ''. The test is the
        # corpus BLEU of the pool with 13a, and the row says so.
        db = self.make_db("no-lang", [
            ("t1", spec("thor", 1), {"all": 30.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 10.0}, ["qq zz"] * N)], langs=[""] * N)
        _, rows, _ = self.report(db)
        row = rows["thor.switch"]
        self.assertEqual(row["p"], 1 / (SAMPLES + 1))
        self.assertIn("pooled BLEU 100.00 vs 0.00", row["significance"])
        self.assertIn("outputs without a language", row["significance"])

    def test_without_a_usable_binary_there_is_no_test(self):
        db = self.make_db("no-binary", [
            ("t1", spec("thor", 1), {"all": 30.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 10.0}, ["qq zz"] * N)])
        for binary, why in (("", "MOEBENCH_BIN not set"),
                            (os.path.join(self.work, "no-such-moebench"), "cannot run")):
            _, rows, _ = self.report(db, binary=binary)
            row = rows["thor.switch"]
            self.assertEqual(row["verdict"], "direction agrees, not significant")
            self.assertIsNone(row["p"])
            self.assertIn("no test: " + why, row["significance"])

    def test_opposite_and_not_measured(self):
        db = self.make_db("opposite", [
            ("t1", spec("thor", 1), {"all": 10.0}, ["qq zz"] * N),
            ("s1", spec("switch", 1), {"all": 30.0}, list(REFS))])
        _, rows, _ = self.report(db)
        self.assertEqual(rows["thor.switch"]["verdict"], "opposite")
        self.assertIn("-20.00 BLEU", rows["thor.switch"]["measured"])
        self.assertEqual(rows["thor.dense"]["verdict"], "not measured")
        self.assertIn("dense runs with sizing=active", rows["thor.dense"]["missing"])

    def test_pooled_over_seeds(self):
        # Two seeds; seed 1 as in the clear case, seed 2 with both sides equal to the
        # references. The pool has 40 sentences, thor never below switch and above it unless
        # a resample has none of seed 1's 20 sentences ((1/2)^40: never in 1000 resamples).
        db = self.make_db("two-seeds", [
            ("t1", spec("thor", 1), {"all": 30.0}, list(REFS)),
            ("s1", spec("switch", 1), {"all": 10.0}, ["qq zz"] * N),
            ("t2", spec("thor", 2), {"all": 31.0}, list(REFS)),
            ("s2", spec("switch", 2), {"all": 31.0}, list(REFS))])
        _, rows, _ = self.report(db)
        row = rows["thor.switch"]
        self.assertEqual(row["p"], 1 / (SAMPLES + 1))
        self.assertIn("over 40 pooled test sentences of 2 seeds", row["significance"])
        # Paired differences +20 and 0: mean +10, sd sqrt(200), se 10; t(0.975, 1) = 12.706.
        self.assertIn("+10.00 BLEU (95% CI [-117.06, +137.06] over 2 seeds;", row["measured"])
        self.assertEqual(row["verdict"], "supported")

    def test_per_language_bleu_next_to_the_headline(self):
        # The headline is the mean of the per-language BLEU (15), not the "all" row (17, the
        # corpus BLEU of both languages pooled in databases before that change).
        db = self.make_db("langs", [
            ("t1", spec("thor", 1), {"all": 17.0, "de": 10.0, "fr": 20.0}, None),
            ("s1", spec("switch", 1), {"all": 16.0, "de": 10.0, "fr": 14.0}, None)])
        summary, rows, md = self.report(db)
        t = summary["tables"]["configurations"]
        by_method = {r[t["columns"].index("method")]: dict(zip(t["columns"], r))
                     for r in t["rows"]}
        self.assertEqual(by_method["thor"]["test BLEU (headline)"], "15.00")
        self.assertEqual(by_method["thor"]["test de"], "10.00")
        self.assertEqual(by_method["thor"]["test fr"], "20.00")
        self.assertEqual(by_method["switch"]["test BLEU (headline)"], "12.00")
        self.assertIn("test fr", md)
        # thor - switch = 15 - 12 on the headline; no outputs stored: no test.
        self.assertIn("+3.00 BLEU", rows["thor.switch"]["measured"])
        self.assertEqual(rows["thor.switch"]["verdict"], "direction agrees, not significant")
        self.assertIn("no per-sentence outputs stored", rows["thor.switch"]["significance"])


if __name__ == "__main__":
    unittest.main()
