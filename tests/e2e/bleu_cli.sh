#!/usr/bin/env bash
# End-to-end test of `moebench bleu` (the sacrebleu-like command). $1: the moebench binary.
# Exits 0 when every check passes, 1 otherwise.
set -uo pipefail

bin="${1:?usage: bleu_cli.sh MOEBENCH_BINARY}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

expect_eq() {  # name expected actual
  if [[ "$2" != "$3" ]]; then
    fail "$1"
    echo "  expected: $2" >&2
    echo "  actual:   $3" >&2
  fi
}

expect_contains() {  # name needle haystack
  if [[ "$3" != *"$2"* ]]; then
    fail "$1: missing '$2' in:"
    echo "$3" >&2
  fi
}

# sacreBLEU's README example (its test_bleu.py expects 48.530827 for it).
printf 'The dog bit the man.\nIt was not unexpected.\nThe man bit him first.\n' >"$tmp/ref.a"
printf 'The dog had bit the man.\nNo one was surprised.\nThe man had bitten the dog.\n' >"$tmp/ref.b"
printf "The dog bit the man.\nIt wasn't surprising.\nThe man had just bitten him.\n" >"$tmp/hyp"

# ---- text output ----------------------------------------------------------------------
out="$("$bin" bleu "$tmp/ref.a" "$tmp/ref.b" -f text <"$tmp/hyp")" || fail "text output exited non-zero"
expect_eq "text output" \
  "BLEU|nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1 = 48.5 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)" \
  "$out"

out="$("$bin" bleu "$tmp/ref.a" "$tmp/ref.b" -i "$tmp/hyp" -f text -w 2 -m bleu chrf)" ||
  fail "two metrics exited non-zero"
expect_contains "two metrics: BLEU with width 2" "= 48.53 " "$out"
expect_contains "two metrics: chrF signature" \
  "chrF2|nrefs:2|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1 = " "$out"

# ---- json output (the default, like sacreBLEU 2.x) -------------------------------------
out="$("$bin" bleu "$tmp/ref.a" "$tmp/ref.b" <"$tmp/hyp")" || fail "json output exited non-zero"
expect_contains "json name" '"name": "BLEU"' "$out"
expect_contains "json score" '"score": 48.5,' "$out"
expect_contains "json signature" \
  '"signature": "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1"' "$out"
expect_contains "json verbose" \
  '"verbose_score": "82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"' "$out"
expect_contains "json signature fields" '"tok": "13a"' "$out"
expect_eq "json starts with a brace" "{" "$(head -n 1 <<<"$out")"

# ---- lowercase and score-only ----------------------------------------------------------
echo "the cat sat on the mat" >"$tmp/ref.lc"
echo "The Cat Sat On The Mat" >"$tmp/hyp.lc"
out="$("$bin" bleu "$tmp/ref.lc" -i "$tmp/hyp.lc" -b)" || fail "score-only exited non-zero"
expect_eq "mixed case scores 0" "0.0" "$out"
out="$("$bin" bleu "$tmp/ref.lc" -i "$tmp/hyp.lc" -b -lc)" || fail "-lc exited non-zero"
expect_eq "-lc scores 100" "100.0" "$out"
out="$("$bin" bleu "$tmp/ref.lc" -i "$tmp/hyp.lc" --lowercase -f text)" || fail "--lowercase failed"
expect_contains "-lc signature" "case:lc" "$out"

# ---- sentence level --------------------------------------------------------------------
out="$("$bin" bleu "$tmp/ref.a" --sentence-level <"$tmp/hyp")" || fail "--sentence-level failed"
expect_eq "one line per segment" "3" "$(wc -l <<<"$out" | tr -d ' ')"
expect_eq "identical first segment" \
  "BLEU|nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.3.1 = 100.0 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)" \
  "$(head -n 1 <<<"$out")"
out="$("$bin" bleu "$tmp/ref.a" -sl -b <"$tmp/hyp")" || fail "-sl -b failed"
expect_eq "sentence scores only, first" "100.0" "$(head -n 1 <<<"$out")"

# ---- empty references ------------------------------------------------------------
# sacreBLEU >= 2.0.1 keeps an empty reference line (its #161): it is a reference of 0 tokens.
# Segment 1: hyp = ref = "the cat sat on the mat" (6 tokens): 6/6, 5/5, 4/4, 3/3 matches.
# Segment 2: hyp "a b" against the empty reference: ref_len 0, totals 2 and 1, no matches.
# Corpus: counts 6/5/4/3, totals 8/6/4/3, hyp_len 8, ref_len 6, BP = 1 (8 >= 6),
# BLEU = 100 * (6/8 * 5/6 * 4/4 * 3/3)^(1/4) = 100 * 0.625^0.25 = 88.914.
printf 'the cat sat on the mat\n\n' >"$tmp/ref.empty"
printf 'the cat sat on the mat\na b\n' >"$tmp/hyp.empty"
out="$("$bin" bleu "$tmp/ref.empty" -i "$tmp/hyp.empty" -f text -w 3 2>&1)" ||
  fail "an empty reference line is refused: $out"
expect_eq "empty reference counts as length 0" \
  "BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1 = 88.914 75.0/83.3/100.0/100.0 (BP = 1.000 ratio = 1.333 hyp_len = 8 ref_len = 6)" \
  "$out"
# Sentence level, segment 2: no matches give 0; hyp_len 2 >= ref_len 0 gives BP 1, ratio 0.
out="$("$bin" bleu "$tmp/ref.empty" -i "$tmp/hyp.empty" -sl 2>&1)" ||
  fail "--sentence-level refuses an empty reference: $out"
expect_eq "sentence BLEU against an empty reference" \
  "BLEU|nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.3.1 = 0.0 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 2 ref_len = 0)" \
  "$(tail -n 1 <<<"$out")"
# chrF: the empty reference has no n-grams, so segment 2 adds 0 everywhere (sacreBLEU counts
# no hypothesis n-grams of an order the reference lacks); segment 1 is perfect: 100.
out="$("$bin" bleu "$tmp/ref.empty" -i "$tmp/hyp.empty" -m chrf -b 2>&1)" ||
  fail "chrF refuses an empty reference: $out"
expect_eq "chrF with an empty reference" "100.0" "$out"
# Bad input other than empty lines is still refused, naming the file and line.
printf 'the cat sat on the mat\n\xff\n' >"$tmp/ref.badutf8"
if err="$("$bin" bleu "$tmp/ref.badutf8" -i "$tmp/hyp.empty" 2>&1 >/dev/null)"; then
  fail "invalid UTF-8 in a reference exited 0"
fi
expect_contains "invalid UTF-8 names file and line" "ref.badutf8:2:" "$err"

# ---- ja-mecab ----------------------------------------------------------------------
# MeCab (IPA) splits hyp into 吾輩 は 犬 で ある 。 名前 は もう 有る 。 and ref into
# 吾輩 は 猫 で ある 。 名前 は まだ 無い 。 (11 tokens each; see tests/core/test_bleu_languages.cpp):
# matches 8/11, 5/10, 3/9, 2/8, BP 1, BLEU = 100 * (8/11 * 5/10 * 3/9 * 2/8)^(1/4) = 41.72.
printf '吾輩は猫である。名前はまだ無い。\n' >"$tmp/ref.ja"
printf '吾輩は犬である。名前はもう有る。\n' >"$tmp/hyp.ja"
out="$("$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -tok ja-mecab -f text -w 2 2>&1)" ||
  fail "-tok ja-mecab exited non-zero: $out"
expect_eq "ja-mecab BLEU and signature" \
  "BLEU|nrefs:1|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|smooth:exp|version:2.3.1 = 41.72 72.7/50.0/33.3/25.0 (BP = 1.000 ratio = 1.000 hyp_len = 11 ref_len = 11)" \
  "$out"
# A dictionary that is not UTF-8 IPA, or no MeCab resource file, is refused clearly.
printf 'dicdir = /var/lib/mecab/dic/ipadic\n' >"$tmp/euc.mecabrc"
if [[ -f /var/lib/mecab/dic/ipadic/sys.dic ]]; then
  if err="$(MECABRC="$tmp/euc.mecabrc" "$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -tok ja-mecab 2>&1)"; then
    fail "an EUC-JP dictionary was accepted"
  fi
  expect_contains "EUC-JP dictionary refused" "EUC-JP, not UTF-8" "$err"
fi
if err="$(MECABRC="$tmp/no.mecabrc" "$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -tok ja-mecab 2>&1)"; then
  fail "a missing MeCab resource file was accepted"
fi
expect_contains "missing mecabrc names the problem" "ja-mecab tokenizer: cannot load MeCab" "$err"
expect_contains "missing mecabrc names the file" "no.mecabrc" "$err"

# ---- -l and --langs (several target languages) -----------------------------------
out="$("$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -l en-ja -b -w 2 2>&1)" || fail "-l en-ja failed: $out"
expect_eq "-l en-ja picks ja-mecab" "41.72" "$out"
out="$("$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -l en-ja -tok 13a -b 2>&1)" || fail "-l -tok failed"
expect_eq "-tok wins over -l (13a: one token each side, no match)" "0.0" "$out"
if err="$("$bin" bleu "$tmp/ref.ja" -i "$tmp/hyp.ja" -l en-ko 2>&1)"; then
  fail "-l en-ko exited 0 (we have no ko-mecab)"
fi
expect_contains "-l en-ko refused" "ko-mecab" "$err"
# Four languages: de hyp = ref (BLEU 100); fr "x y" / "p q" (0); ja the pair above (41.72);
# zh_CN "我爱北京。" / "我爱北京天安门。" with zh: matches 5/5, 3/4, 2/3, 1/2, BP exp(1 - 8/5):
# 38.81. The score is the mean: (100 + 0 + 41.72 + 38.81) / 4 = 45.13.
printf 'a b c d\np q\n吾輩は猫である。名前はまだ無い。\n我爱北京天安门。\n' >"$tmp/ref.multi"
printf 'a b c d\nx y\n吾輩は犬である。名前はもう有る。\n我爱北京。\n' >"$tmp/hyp.multi"
printf 'de\nfr\nja\nzh_CN\n' >"$tmp/langs.multi"
out="$("$bin" bleu "$tmp/ref.multi" -i "$tmp/hyp.multi" --langs "$tmp/langs.multi" -b -w 2 2>&1)" ||
  fail "--langs failed: $out"
expect_eq "--langs scores the mean over languages" "45.13" "$out"
out="$("$bin" bleu "$tmp/ref.multi" -i "$tmp/hyp.multi" --langs "$tmp/langs.multi" -f text)"
expect_contains "--langs: ja line" \
  "ja: BLEU|nrefs:1|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|smooth:exp|version:2.3.1 = 41.7 " "$out"
expect_contains "--langs: zh line" "zh_CN: BLEU|nrefs:1|case:mixed|eff:no|tok:zh|smooth:exp|" "$out"
expect_contains "--langs: mean line" \
  "BLEU|mean of per-language BLEU: de:nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1; fr:" \
  "$out"
expect_eq "--langs: mean line last" "= 45.1" "$(tail -n 1 <<<"$out" | grep -o '= 45.1$')"
# The paired bootstrap resamples the mean; the reference as a system scores 100 except fr,
# whose 2-token segment has no 3-grams (corpus BLEU 0): (100 + 0 + 100 + 100) / 4 = 75.
out="$("$bin" bleu "$tmp/ref.multi" -i "$tmp/hyp.multi" "$tmp/ref.multi" --langs "$tmp/langs.multi" \
  --paired-bs --paired-bs-n 100 -f json 2>&1)" || fail "--langs --paired-bs failed: $out"
expect_contains "--langs bootstrap: baseline is the mean" '"score": 45.13' "$out"
expect_contains "--langs bootstrap: system is the mean" '"score": 75.0' "$out"
expect_contains "--langs bootstrap signature" \
  "ja:nrefs:1|bs:100|seed:12345|case:mixed|eff:no|tok:ja-mecab-0.996-IPA|" "$out"
printf 'de\nfr\n' >"$tmp/langs.short"
if err="$("$bin" bleu "$tmp/ref.multi" -i "$tmp/hyp.multi" --langs "$tmp/langs.short" 2>&1)"; then
  fail "a short --langs file exited 0"
fi
expect_contains "short --langs file" "language file '$tmp/langs.short' has 2 lines but there are 4" "$err"
printf 'de\n\nja\nzh\n' >"$tmp/langs.blank"
if err="$("$bin" bleu "$tmp/ref.multi" -i "$tmp/hyp.multi" --langs "$tmp/langs.blank" 2>&1)"; then
  fail "an empty language code exited 0"
fi
expect_contains "empty language code names file and line" "langs.blank:2: empty language code" "$err"
: >"$tmp/empty.txt"
if err="$("$bin" bleu "$tmp/empty.txt" -i "$tmp/empty.txt" --langs "$tmp/empty.txt" 2>&1)"; then
  fail "--langs without segments exited 0"
fi
expect_contains "--langs without segments" "no segments to score" "$err"

# ---- errors ----------------------------------------------------------------------
head -n 2 "$tmp/hyp" >"$tmp/hyp.short"
if err="$("$bin" bleu "$tmp/ref.a" -i "$tmp/hyp.short" 2>&1 >/dev/null)"; then
  fail "line-count mismatch exited 0"
fi
expect_contains "mismatch names the hypothesis file" "hyp.short" "$err"
expect_contains "mismatch names the reference file" "ref.a" "$err"
expect_contains "mismatch gives the counts" "2 lines" "$err"
expect_contains "mismatch gives the counts" "3 lines" "$err"

if err="$("$bin" bleu "$tmp/ref.a" -tok moses <"$tmp/hyp" 2>&1 >/dev/null)"; then
  fail "unknown tokenizer exited 0"
fi
expect_contains "unknown tokenizer message" "moses" "$err"

# ---- paired bootstrap ------------------------------------------------------------------
# 100 segments of 8 tokens; "good" equals the reference, "bad" replaces every other token.
for i in $(seq 1 100); do
  echo "w$i a$i b$i c$i d$i e$i f$i g$i" >>"$tmp/bs.ref"
  echo "w$i a$i b$i c$i d$i e$i f$i g$i" >>"$tmp/bs.good"
  echo "w$i x a$i x b$i x c$i x" >>"$tmp/bs.bad"
done
cp "$tmp/bs.bad" "$tmp/bs.bad2"
out="$("$bin" bleu "$tmp/bs.ref" -i "$tmp/bs.bad" "$tmp/bs.good" "$tmp/bs.bad2" --paired-bs)" ||
  fail "--paired-bs exited non-zero"
expect_contains "baseline row" "Baseline: $tmp/bs.bad" "$out"
expect_contains "good system is significant" "100.0 (100.0 ± 0.0) (p = 0.0010)*" "$out"
expect_contains "bootstrap signature" \
  "BLEU       nrefs:1|bs:1000|seed:12345|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1" "$out"
again="$("$bin" bleu "$tmp/bs.ref" -i "$tmp/bs.bad" "$tmp/bs.good" "$tmp/bs.bad2" --paired-bs)"
expect_eq "paired bootstrap is deterministic" "$out" "$again"

out="$("$bin" bleu "$tmp/bs.ref" -i "$tmp/bs.bad" "$tmp/bs.bad2" --paired-bs \
  --paired-bs-pvalue one-sided --paired-bs-n 50 -f json)" || fail "--paired-bs json failed"
expect_contains "one-sided p of an identical system is 1" '"p_value": 1.0' "$out"
expect_contains "json sample count" '"n_samples": 50' "$out"

if "$bin" bleu "$tmp/bs.ref" -i "$tmp/bs.bad" --paired-bs >/dev/null 2>&1; then
  fail "--paired-bs with one system exited 0"
fi

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "bleu_cli: all checks passed"
exit 0
