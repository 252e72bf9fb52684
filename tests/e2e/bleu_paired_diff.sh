#!/usr/bin/env bash
# moebench bleu --paired-bs -f json: per system, the difference to the baseline over the
# resamples: its mean and 2.5%/97.5% points (diff_mean, diff_ci95; Note [Bootstrap differences]
# in harness/cli/cmd_bleu.cpp).
source "$(dirname "$0")/lib.bash"
# 100 segments of 8 tokens; "good" equals the reference, "bad" replaces every other token;
# bad2 is bad: every difference 0. "bad" has the same statistics in every segment (8 tokens, 4
# unigrams right, no longer n-gram), so every resample scores it alike: with exp smoothing
# BLEU(bad) = exp((ln 50 + ln(100 / (2 * 700)) + ln(100 / (4 * 600)) + ln(100 / (8 * 500))) / 4),
# and good - bad is 100 - BLEU(bad) on every resample. "half" is good on segments 1-50, bad
# after: above the baseline on every resample that has one of them (all but (1/2)^100), so the
# interval is above 0 and contains the mean, and the mean difference is the difference of the
# means.
for i in $(seq 1 100); do
  echo "w$i a$i b$i c$i d$i e$i f$i g$i" >>"$WORK/ref"
  echo "w$i a$i b$i c$i d$i e$i f$i g$i" >>"$WORK/good"
  echo "w$i x a$i x b$i x c$i x" >>"$WORK/bad"
done
cp "$WORK/bad" "$WORK/bad2"
head -n 50 "$WORK/good" >"$WORK/half"
tail -n 50 "$WORK/bad" >>"$WORK/half"
for rule in one-sided sacrebleu; do
  out="$("$MOEBENCH" bleu "$WORK/ref" -i "$WORK/bad" "$WORK/bad2" "$WORK/good" "$WORK/half" \
    --paired-bs --paired-bs-pvalue "$rule" -f json)" || fail "--paired-bs ($rule) failed"
  /usr/bin/python3 -c '
import json, math, sys
out = json.loads(sys.argv[1])
base, same, good, half = (s["BLEU"] for s in out["systems"])
assert "diff_mean" not in base, base
assert same["diff_mean"] == 0 and same["diff_ci95"] == [0, 0], same
bad = math.exp((math.log(50) + math.log(100 / 1400) + math.log(100 / 2400) + math.log(100 / 4000)) / 4)
assert abs(base["score"] - bad) < 1e-9, (base, bad)
for v in [good["diff_mean"]] + good["diff_ci95"]:
    assert abs(v - (100 - bad)) < 1e-9, (good, 100 - bad)
lo, hi = half["diff_ci95"]
assert 0 < lo < half["diff_mean"] < hi, half
assert abs(half["diff_mean"] - (half["mean"] - base["mean"])) < 1e-9, (half, base)
' "$out" || fail "diff_mean/diff_ci95 ($rule): $out"
done
# The headline of several languages (--langs): the differences of the mean over languages. The
# system is the reference in language xa (segments 1-50) and bad in xb, the baseline bad in
# both. Without smoothing (-s none) bad scores 0 (no 2-gram right) however many of its segments
# a resample draws, so on every resample with both languages the difference is (100 - 0) / 2.
for i in $(seq 1 100); do if [ "$i" -le 50 ]; then echo xa; else echo xb; fi; done >"$WORK/langs"
out="$("$MOEBENCH" bleu "$WORK/ref" -i "$WORK/bad" "$WORK/half" --langs "$WORK/langs" -s none \
  --paired-bs -f json)" || fail "--langs --paired-bs failed"
/usr/bin/python3 -c '
import json, sys
base, half = (s["BLEU"] for s in json.loads(sys.argv[1])["systems"])
assert base["score"] == 0 and abs(half["score"] - 50) < 1e-9, (base, half)
for v in [half["diff_mean"]] + half["diff_ci95"]:
    assert abs(v - 50) < 1e-9, half
' "$out" || fail "--langs diff: $out"
echo "bleu_paired_diff: ok"
