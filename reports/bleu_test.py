"""Sentence-level significance for BLEU claims: a one-sided paired bootstrap of the headline
BLEU (the mean over languages of each language's BLEU) over the pooled test sentences of
several paired runs (one pair per seed), scored by the C++ BLEU.

For the pairs ((run A_s, k), (run B_s, k)) of the common seeds s, the test outputs of each run
(the `outputs` table, the last step that has any for split "test" and that k) are
concatenated seed after seed into one system per side, with the references and the languages
likewise: a sentence of the pool is (seed, test sentence). Both sides must have decoded the
same sentences (same idx, language and references). Then

    moebench bleu REF -i B A --langs LANGS --paired-bs --paired-bs-pvalue one-sided
                  --paired-bs-n N --seed S [--tokenize TOK] -f json

scores each language of the pool with its tokenizer and takes the mean over languages, the
headline the trainer reports (harness/bleu/per_language.h), and resamples the pooled sentences
N times within each language (the same resamples for both systems; every resample keeps each
language's sentence count, Note [Stratified bootstrap] in harness/bleu/significance.h, and
re-scores each language from its own sentences in it, with its own tokenizer, and averages the
languages). It
reports p = (#{resamples with headline(A) <= headline(B)} + 1) / (N + 1), Koehn's one-sided
test that A scores higher than B (harness/bleu/significance.h), so the smallest p is 1/(N + 1),
and the sentence-level 95% interval of headline(A) - headline(B): the 2.5% and 97.5% points of
the difference over the resamples (diff_ci95).

Tokenizers: each language is scored as the trainer scored it, the `tok` field of the run's
per-language evals signatures (13a, zh, ja-mecab-0.996-IPA; the 'all' row's mean signature,
which has one tok field per language, is skipped). Both runs of a pair must agree on the full
value. When every language has the same tokenizer it is passed as `--tokenize` (the
signature's `ja-mecab-0.996-IPA` is `-tok ja-mecab`); otherwise `moebench bleu --langs` picks
each language's tokenizer by its code (zh, ja-mecab, else 13a), and the test checks that the
tokenizers in its signature are the trainer's, else there is no test. Outputs from databases
before per-language scoring carry no language: then the test is the corpus BLEU of the pooled
sentences (the 'all' row's tokenizer, else 13a), and its note says so. Nothing is tokenized or
scored in Python.
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
# For outputs without a language whose runs' evals carry no tokenizer in their signature.
DEFAULT_TOKENIZER = "13a"
# The prefix of the headline's signature (harness/bleu/per_language.h).
MEAN_SIGNATURE_PREFIX = "mean of per-language "


@dataclass
class BleuTest:
    p: object  # None: no test (note says why)
    bleu_a: object = None  # the headline of side A over the pool
    bleu_b: object = None
    sentences: int = 0
    note: str = ""
    languages: int = 0  # languages of the headline; 0: pooled outputs without a language
    diff_mean: object = None  # mean of A - B over the resamples
    diff_lo: object = None  # its 2.5% and 97.5% points
    diff_hi: object = None


def cli_tokenizer(tok):
    """The `moebench bleu -tok` name of a signature's tok value: `ja-mecab-0.996-IPA` (MeCab
    version and dictionary) is `ja-mecab`; the others are the same."""
    return "ja-mecab" if tok.startswith("ja-mecab") else tok


def _signature_tok(signature):
    """The tok field of a single (not mean) signature, or None."""
    for field in (signature or "").split("|"):
        if field.startswith("tok:"):
            return field[len("tok:"):]
    return None


def _mean_signature_toks(signature):
    """lang -> tok of a mean signature ('mean of per-language BLEU: de:<sig>; ja:<sig>')."""
    out = {}
    body = signature.split(": ", 1)[1] if ": " in signature else ""
    for item in body.split("; "):
        lang, _, sig = item.partition(":")
        if lang:
            out[lang] = _signature_tok(sig)
    return out


def _read_outputs(conn, run_id, k):
    rows = conn.execute(
        "SELECT idx, hyp, ref, lang FROM outputs WHERE run_id = ? AND split = 'test' AND k = ? AND "
        "step = (SELECT max(step) FROM outputs WHERE run_id = ? AND split = 'test' AND k = ?) "
        "ORDER BY idx", (run_id, k, run_id, k)).fetchall()
    return rows


def _tokenizers(conn, run_id):
    """lang -> the BLEU tokenizer (the signature's full tok value) the trainer scored that
    language's test BLEU with. The 'all' row is kept only when its signature is a single one
    (databases before the mean headline); a mean signature names several tokenizers."""
    out = {}
    for lang, signature in conn.execute(
            "SELECT lang, signature FROM evals WHERE run_id = ? AND split = 'test' "
            "ORDER BY step", (run_id,)):
        if (signature or "").startswith(MEAN_SIGNATURE_PREFIX):
            continue
        tok = _signature_tok(signature)
        if tok is not None:
            out[lang] = tok
    return out


def _bootstrap(binary, hyp_a, hyp_b, refs, langs, tok, samples, seed):
    """One paired bootstrap by `moebench bleu`: of the mean over languages when `langs` is
    given (one code per sentence), else of the pooled corpus BLEU; `tok`: -tok, or None for
    each language's own. Returns (BleuTest, the signature)."""
    with tempfile.TemporaryDirectory(prefix="moebench-bleu-") as tmp:
        paths = {}
        files = [("ref", refs), ("a", hyp_a), ("b", hyp_b)] + ([("langs", langs)] if langs else [])
        for name, lines in files:
            paths[name] = os.path.join(tmp, name + ".txt")
            with open(paths[name], "w", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
        argv = [binary, "bleu", paths["ref"], "-i", paths["b"], paths["a"], "--paired-bs",
                "--paired-bs-pvalue", "one-sided", "--paired-bs-n", str(samples), "--seed",
                str(seed), "-f", "json"]
        if langs:
            argv += ["--langs", paths["langs"]]
        if tok is not None:
            argv += ["--tokenize", cli_tokenizer(tok)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True)
        except OSError as e:
            return BleuTest(None, note=f"cannot run {binary} bleu: {e.strerror}"), ""
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["error"])[-1]
        return BleuTest(None, note=f"moebench bleu failed: {last}"), ""
    out = json.loads(proc.stdout)
    base, system = out["systems"][0]["BLEU"], out["systems"][1]["BLEU"]
    lo, hi = system.get("diff_ci95", (None, None))
    return BleuTest(p=system["p_value"], bleu_a=system["score"], bleu_b=base["score"],
                    sentences=len(refs), diff_mean=system.get("diff_mean"), diff_lo=lo,
                    diff_hi=hi), out["signatures"]["BLEU"]


def _line(text):
    # One sentence per line: the C++ reader splits on '\n' and right-strips.
    return text.replace("\r", " ").replace("\n", " ")


def _code(lang):
    # One language code per line of the --langs file, which strips whitespace.
    return _line(lang).strip()


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
        hyps_a, hyps_b, refs, langs = [], [], [], []
        toks = {}  # lang -> the trainer's tok (full signature value), when known
        try:
            if not has_outputs_table(conn):
                return BleuTest(None, note="no per-sentence outputs stored (no outputs table)")
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
                for lang in sorted({r[3] for r in oa}):
                    key = lang if lang else "all"
                    if ta.get(key) != tb.get(key):
                        return BleuTest(None, note=f"runs {a.id} and {b.id} scored "
                                                   f"{lang or 'the pool'} with different "
                                                   f"tokenizers ({ta.get(key)} and "
                                                   f"{tb.get(key)})")
                    if ta.get(key) is not None:
                        if toks.setdefault(key, ta[key]) != ta[key]:
                            return BleuTest(None, note=f"seeds scored {lang or 'the pool'} with "
                                                       f"different tokenizers ({toks[key]} and "
                                                       f"{ta[key]})")
                for (_, hyp_a, ref, lang), (_, hyp_b, _, _) in zip(oa, ob):
                    hyps_a.append(_line(hyp_a))
                    hyps_b.append(_line(hyp_b))
                    refs.append(_line(ref))
                    langs.append(_code(lang or ""))
        finally:
            conn.close()
        if not binary:
            return BleuTest(None, note="MOEBENCH_BIN not set: run through `moebench report`")
        if any(langs) and not all(langs):
            return BleuTest(None, note="some test outputs have a language and others none")
        if not any(langs):
            # Before per-language scoring: no language to choose a tokenizer by.
            tok = toks.get("all", DEFAULT_TOKENIZER)
            r, _ = _bootstrap(binary, hyps_a, hyps_b, refs, None, tok, samples, seed)
            if r.p is not None:
                r.note = (f"C++ BLEU of the pool, tok {tok} (outputs without a language: a "
                          f"database from before per-language scoring), {samples} resamples, "
                          f"seed {seed}")
            return r
        distinct = {toks.get(lang) for lang in set(langs)}
        single = next(iter(distinct)) if len(distinct) == 1 else None
        r, signature = _bootstrap(binary, hyps_a, hyps_b, refs, langs, single, samples, seed)
        if r.p is None:
            return r
        used = _mean_signature_toks(signature)
        for lang in sorted(set(langs)):
            if toks.get(lang) is not None and used.get(lang) != toks[lang]:
                return BleuTest(None, note=f"the trainer scored {lang} with tok {toks[lang]}, "
                                           f"moebench bleu --langs with {used.get(lang)}: "
                                           f"languages with other tokenizers than sacreBLEU's "
                                           f"for their code cannot be tested together")
        r.languages = len(used)
        r.note = (f"C++ BLEU, headline = mean over {len(used)} language"
                  f"{'s' if len(used) != 1 else ''} ("
                  + ", ".join(f"{lang}: tok {tok}" for lang, tok in sorted(used.items()))
                  + f"), {samples} resamples, seed {seed}")
        return r
    return test


def no_bleu_test(note):
    """A stand-in when the database stores no outputs at all."""
    return lambda pairs: BleuTest(None, note=note)
