"""Sentence-level significance for BLEU claims: a one-sided paired bootstrap over the pooled
test sentences of several paired runs (one pair per seed), scored by the C++ BLEU.

For the pairs ((run A_s, k), (run B_s, k)) of the common seeds s, the test outputs of each run
(the `outputs` table, the last step that has any for split "test" and that k) are
concatenated seed after seed into one system per side, with the references likewise: a
sentence of the pool is (seed, test sentence). Both sides must have decoded the same
sentences (same idx, language and references). Then

    moebench bleu REF -i B A --paired-bs --paired-bs-pvalue one-sided --paired-bs-n N
                  --seed S --tokenize TOK -f json

resamples the pooled sentences N times (the same resamples for both systems) and reports
p = (#{resamples with BLEU(A) <= BLEU(B)} + 1) / (N + 1): Koehn's one-sided test that A
scores higher than B (harness/bleu/significance.h). TOK is the tokenizer the trainer scored
each language with (the tok field of the run's evals signatures: 13a, zh, ja-mecab); when the
languages of a pool need different tokenizers, each tokenizer's sentences are tested
separately and the test's p is the largest (the claim must hold in each). BLEU here is the
corpus BLEU of the pool (of a tokenizer group), not the mean over languages. Nothing is
tokenized or scored in Python.
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
# For runs whose evals carry no tokenizer in their signature.
DEFAULT_TOKENIZER = "13a"


@dataclass
class BleuTest:
    p: object  # None: no test (note says why)
    bleu_a: object = None
    bleu_b: object = None
    sentences: int = 0
    note: str = ""


def _read_outputs(conn, run_id, k):
    rows = conn.execute(
        "SELECT idx, hyp, ref, lang FROM outputs WHERE run_id = ? AND split = 'test' AND k = ? AND "
        "step = (SELECT max(step) FROM outputs WHERE run_id = ? AND split = 'test' AND k = ?) "
        "ORDER BY idx", (run_id, k, run_id, k)).fetchall()
    return rows


def _tokenizers(conn, run_id):
    """lang -> the BLEU tokenizer the trainer scored that language's test BLEU with (the tok
    field of its evals signature; "all" for the pooled row)."""
    out = {}
    for lang, signature in conn.execute(
            "SELECT lang, signature FROM evals WHERE run_id = ? AND split = 'test' "
            "ORDER BY step", (run_id,)):
        for field in (signature or "").split("|"):
            if field.startswith("tok:"):
                out[lang] = field[len("tok:"):]
    return out


def _bootstrap(binary, tok, hyp_a, hyp_b, refs, samples, seed):
    """One pooled paired bootstrap by `moebench bleu` with tokenizer `tok`."""
    with tempfile.TemporaryDirectory(prefix="moebench-bleu-") as tmp:
        paths = {}
        for name, lines in (("ref", refs), ("a", hyp_a), ("b", hyp_b)):
            paths[name] = os.path.join(tmp, name + ".txt")
            with open(paths[name], "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
        try:
            proc = subprocess.run(
                [binary, "bleu", paths["ref"], "-i", paths["b"], paths["a"], "--paired-bs",
                 "--paired-bs-pvalue", "one-sided", "--paired-bs-n", str(samples), "--seed",
                 str(seed), "--tokenize", tok, "-f", "json"], capture_output=True, text=True)
        except OSError as e:
            return BleuTest(None, note=f"cannot run {binary} bleu: {e.strerror}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["error"])[-1]
        return BleuTest(None, note=f"moebench bleu failed: {last}")
    out = json.loads(proc.stdout)
    base, system = out["systems"][0]["BLEU"], out["systems"][1]["BLEU"]
    return BleuTest(p=system["p_value"], bleu_a=system["score"], bleu_b=base["score"],
                    sentences=len(refs),
                    note=f"C++ BLEU, tok {tok}, {out['n_samples']} resamples, seed {out['seed']}")


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
            groups = {}  # tokenizer -> (hyps A, hyps B, refs)
            for (a, ka), (b, kb) in pairs:
                oa, ob = _read_outputs(conn, a.id, ka), _read_outputs(conn, b.id, kb)
                for run_, k_, o in ((a, ka, oa), (b, kb, ob)):
                    if not o:
                        return BleuTest(None, note=f"no per-sentence test outputs stored for "
                                                   f"run {run_.id} (k = {k_})")
                if [r[0] for r in oa] != [r[0] for r in ob] or \
                        [r[2] for r in oa] != [r[2] for r in ob] or \
                        [r[3] for r in oa] != [r[3] for r in ob]:
                    return BleuTest(None, note=f"runs {a.id} and {b.id} did not decode the same "
                                               f"test sentences")
                ta, tb = _tokenizers(conn, a.id), _tokenizers(conn, b.id)
                for _, hyp_a, ref, lang in oa:
                    if ta.get(lang, ta.get("all")) != tb.get(lang, tb.get("all")):
                        return BleuTest(None, note=f"runs {a.id} and {b.id} scored {lang} with "
                                                   f"different tokenizers")
                for (_, hyp_a, ref, lang), (_, hyp_b, _, _) in zip(oa, ob):
                    g = groups.setdefault(ta.get(lang, ta.get("all", DEFAULT_TOKENIZER)),
                                          ([], [], []))
                    g[0].append(_line(hyp_a))
                    g[1].append(_line(hyp_b))
                    g[2].append(_line(ref))
        finally:
            conn.close()
        if not binary:
            return BleuTest(None, note="MOEBENCH_BIN not set: run through `moebench report`")
        results = []
        for tok in sorted(groups):
            r = _bootstrap(binary, tok, *groups[tok], samples=samples, seed=seed)
            if r.p is None:
                return r
            results.append(r)
        if len(results) == 1:
            return results[0]
        # Languages scored with different tokenizers: one pooled bootstrap per tokenizer, and
        # the claim must hold in each (intersection-union: the largest p).
        worst = max(results, key=lambda r: r.p)
        parts = "; ".join(f"{r.note}: pooled BLEU {r.bleu_a:.2f} vs {r.bleu_b:.2f} over "
                          f"{r.sentences}, p = {r.p:.3g}" for r in results)
        return BleuTest(p=worst.p, bleu_a=worst.bleu_a, bleu_b=worst.bleu_b,
                        sentences=sum(r.sentences for r in results),
                        note=f"one test per tokenizer, the largest p: {parts}")
    return test


def no_bleu_test(note):
    """A stand-in when the database stores no outputs at all."""
    return lambda pairs: BleuTest(None, note=note)
