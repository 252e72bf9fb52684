"""Sentence-level significance for BLEU claims: a one-sided paired bootstrap over the pooled
test sentences of several paired runs (one pair per seed), scored by the C++ BLEU.

For the pairs ((run A_s, k), (run B_s, k)) of the common seeds s, the test outputs of each run
(the `outputs` table, the last step that has any for split "test" and that k) are
concatenated seed after seed into one system per side, with the references likewise: a
sentence of the pool is (seed, test sentence). Both sides must have decoded the same
sentences (same idx and references). Then

    moebench bleu REF -i B A --paired-bs --paired-bs-pvalue one-sided --paired-bs-n N
                  --seed S -f json

resamples the pooled sentences N times (the same resamples for both systems) and reports
p = (#{resamples with BLEU(A) <= BLEU(B)} + 1) / (N + 1): Koehn's one-sided test that A
scores higher than B (harness/bleu/significance.h). BLEU here is the corpus BLEU of the
pool (13a, exp smoothing: what the trainer scores with), not the mean over languages.
Nothing is tokenized or scored in Python.
"""

import json
import os
import sqlite3
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass

DEFAULT_SAMPLES = 1000
DEFAULT_SEED = 12345


@dataclass
class BleuTest:
    p: object  # None: no test (note says why)
    bleu_a: object = None
    bleu_b: object = None
    sentences: int = 0
    note: str = ""


def _read_outputs(conn, run_id, k):
    rows = conn.execute(
        "SELECT idx, hyp, ref FROM outputs WHERE run_id = ? AND split = 'test' AND k = ? AND "
        "step = (SELECT max(step) FROM outputs WHERE run_id = ? AND split = 'test' AND k = ?) "
        "ORDER BY idx", (run_id, k, run_id, k)).fetchall()
    return rows


def _line(text):
    # One sentence per line: the C++ reader splits on '\n' and right-strips.
    return text.replace("\r", " ").replace("\n", " ")


def make_bleu_test(db_path, binary, samples=DEFAULT_SAMPLES, seed=DEFAULT_SEED):
    """A callable pairs -> BleuTest for the claims checker. `binary`: the moebench binary
    ("" when unknown: then every test says so)."""
    cache = {}

    def has_outputs_table(conn):
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'outputs'").fetchone()[0] > 0

    def test(pairs):
        key = tuple((a.id, ka, b.id, kb) for (a, ka), (b, kb) in pairs)
        if key not in cache:
            cache[key] = run(pairs)
        return cache[key]

    def run(pairs):
        uri = "file:" + urllib.parse.quote(os.path.abspath(db_path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        try:
            if not has_outputs_table(conn):
                return BleuTest(None, note="no per-sentence outputs stored (no outputs table)")
            hyp_a, hyp_b, refs = [], [], []
            for (a, ka), (b, kb) in pairs:
                oa, ob = _read_outputs(conn, a.id, ka), _read_outputs(conn, b.id, kb)
                for run_, k_, o in ((a, ka, oa), (b, kb, ob)):
                    if not o:
                        return BleuTest(None, note=f"no per-sentence test outputs stored for "
                                                   f"run {run_.id} (k = {k_})")
                if [r[0] for r in oa] != [r[0] for r in ob] or \
                        [r[2] for r in oa] != [r[2] for r in ob]:
                    return BleuTest(None, note=f"runs {a.id} and {b.id} did not decode the same "
                                               f"test sentences")
                hyp_a += [_line(r[1]) for r in oa]
                hyp_b += [_line(r[1]) for r in ob]
                refs += [_line(r[2]) for r in oa]
        finally:
            conn.close()
        if not binary:
            return BleuTest(None, note="MOEBENCH_BIN not set: run through `moebench report`")
        with tempfile.TemporaryDirectory(prefix="moebench-bleu-") as tmp:
            paths = {}
            for name, lines in (("ref", refs), ("a", hyp_a), ("b", hyp_b)):
                paths[name] = os.path.join(tmp, name + ".txt")
                with open(paths[name], "w", encoding="utf-8") as f:
                    f.write("".join(line + "\n" for line in lines))
            try:
                proc = subprocess.run(
                    [binary, "bleu", paths["ref"], "-i", paths["b"], paths["a"], "--paired-bs",
                     "--paired-bs-pvalue", "one-sided", "--paired-bs-n", str(samples),
                     "--seed", str(seed), "-f", "json"], capture_output=True, text=True)
            except OSError as e:
                return BleuTest(None, note=f"cannot run {binary} bleu: {e.strerror}")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["error"])[-1]
            return BleuTest(None, note=f"moebench bleu failed: {last}")
        out = json.loads(proc.stdout)
        base, system = out["systems"][0]["BLEU"], out["systems"][1]["BLEU"]
        return BleuTest(p=system["p_value"], bleu_a=system["score"], bleu_b=base["score"],
                        sentences=len(refs),
                        note=f"C++ BLEU, {out['n_samples']} resamples, seed {out['seed']}")
    return test


def no_bleu_test(note):
    """A stand-in when the database stores no outputs at all."""
    return lambda pairs: BleuTest(None, note=note)
