// Corpus and sentence BLEU. Expected counts and scores are worked out by hand in the comments
// (n-grams listed, precisions in percent); a few published sacreBLEU results are cross-checks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bleu/bleu.h"

namespace moebench {
namespace {

constexpr double kTight = 1e-9;

BleuOptions WithSmoothing(const std::string& method) {
  BleuOptions opt;
  opt.smooth_method = method;
  return opt;
}

TEST(Bleu, IdenticalHypothesisScores100) {
  const BleuScore s = CorpusBleu({"the cat sat on the mat"}, {{"the cat sat on the mat"}});
  EXPECT_NEAR(s.score, 100.0, kTight);
  EXPECT_EQ(s.bp, 1.0);
  for (double p : s.precisions) EXPECT_NEAR(p, 100.0, kTight);
}

// hyp "a b c d e" vs ref "a b c x e" (5 tokens each, BP = 1):
//   1-grams a b c d e       -> a b c e match: 4/5
//   2-grams ab bc cd de     -> ab bc:         2/4
//   3-grams abc bcd cde     -> abc:           1/3
//   4-grams abcd bcde       -> none:          0/2
class BleuZeroFourGram : public ::testing::Test {
 protected:
  BleuScore Score(const BleuOptions& opt) {
    return CorpusBleu({"a b c d e"}, {{"a b c x e"}}, opt);
  }
};

TEST_F(BleuZeroFourGram, CountsAndTotals) {
  const BleuScore s = Score({});
  EXPECT_EQ(s.counts, (std::vector<int64_t>{4, 2, 1, 0}));
  EXPECT_EQ(s.totals, (std::vector<int64_t>{5, 4, 3, 2}));
  EXPECT_EQ(s.sys_len, 5);
  EXPECT_EQ(s.ref_len, 5);
}

TEST_F(BleuZeroFourGram, ExpSmoothingHalvesTheFirstZeroOrder) {
  // p4 = 100 / (2 * 2) = 25; score = (80 * 50 * 100/3 * 25)^(1/4) = (1e7 / 3)^(1/4).
  const BleuScore s = Score(WithSmoothing("exp"));
  EXPECT_NEAR(s.precisions[3], 25.0, kTight);
  EXPECT_NEAR(s.score, std::pow(1e7 / 3, 0.25), kTight);
}

TEST_F(BleuZeroFourGram, FloorSmoothingUsesValueOverTotal) {
  // p4 = 100 * 0.1 / 2 = 5; score = (80 * 50 * 100/3 * 5)^(1/4) = (2e6 / 3)^(1/4).
  const BleuScore s = Score(WithSmoothing("floor"));
  EXPECT_NEAR(s.precisions[3], 5.0, kTight);
  EXPECT_NEAR(s.score, std::pow(2e6 / 3, 0.25), kTight);

  BleuOptions half = WithSmoothing("floor");
  half.smooth_value = 0.5;  // p4 = 100 * 0.5 / 2 = 25: same as exp here
  EXPECT_NEAR(Score(half).score, std::pow(1e7 / 3, 0.25), kTight);
}

TEST_F(BleuZeroFourGram, AddKSmoothingAddsToOrdersAboveOne) {
  // p1 = 80; p2 = 3/5 = 60; p3 = 2/4 = 50; p4 = 1/3 -> score = (80*60*50*100/3)^(1/4) = 8e6^(1/4).
  const BleuScore s = Score(WithSmoothing("add-k"));
  EXPECT_NEAR(s.precisions[0], 80.0, kTight);
  EXPECT_NEAR(s.precisions[1], 60.0, kTight);
  EXPECT_NEAR(s.score, std::pow(8e6, 0.25), kTight);

  BleuOptions two = WithSmoothing("add-k");
  two.smooth_value = 2;  // p2 = 4/6, p3 = 3/5, p4 = 2/4
  EXPECT_NEAR(Score(two).score, std::pow(80.0 * (400.0 / 6) * 60 * 50, 0.25), kTight);
}

TEST_F(BleuZeroFourGram, NoSmoothingGivesZero) {
  EXPECT_EQ(Score(WithSmoothing("none")).score, 0.0);
}

TEST_F(BleuZeroFourGram, SignatureNamesTheSmoothing) {
  EXPECT_EQ(Score(WithSmoothing("exp")).signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1");
  EXPECT_EQ(Score(WithSmoothing("none")).signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:none|version:2.3.1");
  // sacreBLEU always prints the value of floor and add-k, default or not.
  EXPECT_EQ(Score(WithSmoothing("floor")).signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.10]|version:2.3.1");
  EXPECT_EQ(Score(WithSmoothing("add-k")).signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:add-k[1.00]|version:2.3.1");
  BleuOptions custom = WithSmoothing("floor");
  custom.smooth_value = 0.25;
  EXPECT_EQ(Score(custom).signature,
            "nrefs:1|case:mixed|eff:no|tok:13a|smooth:floor[0.25]|version:2.3.1");
}

TEST(Bleu, BrevityPenaltyIsExpOneMinusRefOverHyp) {
  // hyp = the first 6 of the 8 reference tokens: every precision is 100, c = 6, r = 8,
  // BP = exp(1 - 8/6).
  const BleuScore s = CorpusBleu({"a b c d e f"}, {{"a b c d e f g h"}});
  EXPECT_NEAR(s.bp, std::exp(1.0 - 8.0 / 6.0), kTight);
  EXPECT_NEAR(s.score, 100 * std::exp(1.0 - 8.0 / 6.0), kTight);
  EXPECT_NEAR(s.ratio, 0.75, kTight);
  // 100 * e^(-1/3) = 71.653..., BP 0.71653... rounds to 0.717.
  EXPECT_EQ(
      s.Format(),
      "BLEU = 71.65 100.0/100.0/100.0/100.0 (BP = 0.717 ratio = 0.750 hyp_len = 6 ref_len = 8)");
}

TEST(Bleu, NoBrevityPenaltyForLongerHypothesis) {
  const BleuScore s = CorpusBleu({"a b c d e f g"}, {{"a b c d e f"}});
  EXPECT_EQ(s.bp, 1.0);
}

TEST(Bleu, EmptyHypothesisScoresZeroWithZeroBrevityPenalty) {
  const BleuScore s = CorpusBleu({""}, {{"a b"}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.bp, 0.0);
  EXPECT_EQ(s.sys_len, 0);
}

// Segment 1: hyp "the cat is on the mat" / ref "the cat sat on the mat" (6 / 6 tokens)
//   1-grams: the x2, cat, on, mat match, "is" not             5/6
//   2-grams: the-cat, on-the, the-mat match of 5              3/5
//   3-grams: on-the-mat matches of 4                           1/4
//   4-grams: none of 3                                         0/3
// Segment 2: hyp "a dog barks" / ref "the dog barks loudly" (3 / 4 tokens)
//   1-grams: dog, barks of 3                                   2/3
//   2-grams: dog-barks of 2                                    1/2
//   3-grams: none of 1                                         0/1
//   4-grams: none                                              0/0
// Corpus: counts {7, 4, 1, 0}, totals {9, 7, 5, 3}, c = 9, r = 10.
TEST(Bleu, TwoSegmentCorpusSumsStatisticsBeforeScoring) {
  const BleuScore s = CorpusBleu({"the cat is on the mat", "a dog barks"},
                                 {{"the cat sat on the mat", "the dog barks loudly"}});
  EXPECT_EQ(s.counts, (std::vector<int64_t>{7, 4, 1, 0}));
  EXPECT_EQ(s.totals, (std::vector<int64_t>{9, 7, 5, 3}));
  EXPECT_EQ(s.sys_len, 9);
  EXPECT_EQ(s.ref_len, 10);
  // exp smoothing: p4 = 100 / (2 * 3).
  const double p1 = 700.0 / 9, p2 = 400.0 / 7, p3 = 20.0, p4 = 100.0 / 6;
  const double bp = std::exp(1.0 - 10.0 / 9.0);
  EXPECT_NEAR(s.precisions[3], p4, kTight);
  EXPECT_NEAR(s.score, bp * std::pow(p1 * p2 * p3 * p4, 0.25), kTight);
}

TEST(Bleu, MultipleReferencesUseClosestLengthWithTiesToTheShorter) {
  // hyp 4 tokens; refs of 3 and 5 tokens are equally close: the shorter (3) wins.
  EXPECT_EQ(CorpusBleu({"a b c d"}, {{"a b c"}, {"a b c d e"}}).ref_len, 3);
  EXPECT_EQ(CorpusBleu({"a b c d"}, {{"a b c d e"}, {"a b c"}}).ref_len, 3);
  // refs of 2 and 5 tokens: 5 is closer to 4.
  EXPECT_EQ(CorpusBleu({"a b c d"}, {{"a b"}, {"a b c d e"}}).ref_len, 5);
}

TEST(Bleu, MultipleReferencesClipByTheLargestReferenceCount) {
  // "the" occurs 3 times in the hypothesis, at most twice in one reference: 2 matches.
  const BleuScore s = CorpusBleu({"the the the"}, {{"the cat"}, {"the the dog"}});
  EXPECT_EQ(s.counts[0], 2);
  EXPECT_EQ(s.totals[0], 3);
  EXPECT_EQ(s.signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1");
}

// sacreBLEU >= 2.0.1 (its #161, commit f793ae5) keeps empty references: an empty reference is a
// reference of 0 tokens, with no n-grams, and counts towards nrefs like any other.
TEST(Bleu, EmptyReferenceContributesReferenceLengthZero) {
  // Segment 1: hyp = ref, 6 tokens: matches/totals 6/6, 5/5, 4/4, 3/3, ref_len 6.
  // Segment 2: hyp "a b" vs "": ref_len 0; totals 2, 1, 0, 0; no matches.
  // Corpus: counts {6, 5, 4, 3}, totals {8, 6, 4, 3}, c = 8, r = 6, BP = 1,
  // BLEU = 100 * (6/8 * 5/6 * 4/4 * 3/3)^(1/4).
  const BleuScore s =
      CorpusBleu({"the cat sat on the mat", "a b"}, {{"the cat sat on the mat", ""}});
  EXPECT_EQ(s.counts, (std::vector<int64_t>{6, 5, 4, 3}));
  EXPECT_EQ(s.totals, (std::vector<int64_t>{8, 6, 4, 3}));
  EXPECT_EQ(s.sys_len, 8);
  EXPECT_EQ(s.ref_len, 6);
  EXPECT_EQ(s.bp, 1.0);
  EXPECT_NEAR(s.score, 100 * std::pow(6.0 / 8 * 5.0 / 6, 0.25), kTight);
  EXPECT_EQ(s.signature, "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1");
}

TEST(Bleu, EmptyReferenceAloneScoresZeroWithoutBrevityPenalty) {
  // hyp "a" vs "": c = 1 >= r = 0, so BP = 1; no match anywhere: 0 (sacreBLEU's early exit).
  const BleuScore s = CorpusBleu({"a"}, {{""}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.bp, 1.0);
  EXPECT_EQ(s.ref_len, 0);
  EXPECT_EQ(s.ratio, 0.0);  // ref_len 0
  // Both empty: c = r = 0, BP = 1, score 0.
  const BleuScore both = SentenceBleu("", {""});
  EXPECT_EQ(both.score, 0.0);
  EXPECT_EQ(both.bp, 1.0);
  EXPECT_EQ(SentenceBleu("a b", {""}).Format(1),
            "BLEU = 0.0 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 2 ref_len = 0)");
}

TEST(Bleu, EmptyReferenceAmongSeveralIsTheClosestLength) {
  // hyp "a" (1 token); refs of 5 and 0 tokens: |1 - 0| < |1 - 5|, so r = 0 and BP = 1.
  // Sentence BLEU (effective order: only order 1 has n-grams): p1 = 100, score 100.
  // (Dropping the empty reference, as sacreBLEU 2.0.0 did, would give r = 5, 100 * e^-4.)
  const BleuScore s = SentenceBleu("a", {"a b c d e", ""});
  EXPECT_EQ(s.ref_len, 0);
  EXPECT_NEAR(s.score, 100.0, kTight);
  EXPECT_EQ(s.signature, "nrefs:2|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.3.1");
  EXPECT_EQ(CorpusBleu({"a b", "c d"}, {{"a b", "c d"}, {"a b", ""}}).signature,
            "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.3.1");
}

TEST(Bleu, SentenceBleuUsesEffectiveOrder) {
  // "a test" has no 3- or 4-grams: with effective order only orders 1-2 count.
  const BleuScore sentence = SentenceBleu("a test", {"a test"});
  EXPECT_NEAR(sentence.score, 100.0, kTight);
  EXPECT_EQ(sentence.signature, "nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:2.3.1");
  // Without it the empty 3-gram order makes the corpus score 0.
  EXPECT_EQ(CorpusBleu({"a test"}, {{"a test"}}).score, 0.0);

  // hyp "test" vs ref "a test": p1 = 100, order 2 has no hypothesis n-grams, BP = exp(1 - 2/1).
  EXPECT_NEAR(SentenceBleu("test", {"a test"}).score, 100 * std::exp(-1.0), kTight);
}

TEST(Bleu, EffectiveOrderWithFloorSmoothing) {
  // hyp "a little test" / ref "a test": p1 = 2/3; p2 = floor 100 * 0.01 / 2 = 0.5;
  // p3 = 100 * 0.01 / 1 = 1; BP = 1; score = (200/3 * 0.5 * 1)^(1/3).
  // Also sacreBLEU's test_bleu.py (test_case_effective_order): 0.03218297948685433 * 100.
  BleuOptions opt;
  opt.smooth_method = "floor";
  opt.smooth_value = 0.01;
  opt.tokenize = "none";
  const BleuScore s = SentenceBleu("a little test", {"a test"}, opt);
  EXPECT_NEAR(s.score, std::cbrt(100.0 / 3), kTight);
  EXPECT_NEAR(s.score, 3.218297948685433, 1e-8);
}

TEST(Bleu, LowercaseOption) {
  EXPECT_EQ(SentenceBleu("The Cat", {"the cat"}).score, 0.0);
  BleuOptions opt;
  opt.lowercase = true;
  const BleuScore s = SentenceBleu("The Cat", {"the cat"}, opt);
  EXPECT_NEAR(s.score, 100.0, kTight);
  EXPECT_EQ(s.signature, "nrefs:1|case:lc|eff:yes|tok:13a|smooth:exp|version:2.3.1");
}

TEST(Bleu, TokenizerDecidesWhatMatches) {
  // 13a turns both into the tokens `" hi "`; with `none` the tokens differ.
  EXPECT_NEAR(SentenceBleu("&quot;hi&quot;", {"\"hi\""}).score, 100.0, kTight);
  BleuOptions none;
  none.tokenize = "none";
  EXPECT_EQ(SentenceBleu("&quot;hi&quot;", {"\"hi\""}, none).score, 0.0);
}

TEST(Bleu, MaxNgramOrderChangesTheOrders) {
  BleuOptions opt;
  opt.max_ngram_order = 2;
  // From the 4-gram-less example: p1 = 80, p2 = 50 -> sqrt(4000).
  const BleuScore s = CorpusBleu({"a b c d e"}, {{"a b c x e"}}, opt);
  ASSERT_EQ(s.precisions.size(), 2u);
  EXPECT_NEAR(s.score, std::sqrt(4000.0), kTight);
}

TEST(Bleu, RejectsBadInput) {
  EXPECT_THROW(CorpusBleu({"a", "b"}, {{"a"}}), std::runtime_error);
  EXPECT_THROW(CorpusBleu({"a"}, {}), std::runtime_error);
  EXPECT_THROW(CorpusBleu({"a"}, {{"a"}}, WithSmoothing("laplace")), std::runtime_error);
  BleuOptions zero_order;
  zero_order.max_ngram_order = 0;
  EXPECT_THROW(CorpusBleu({"a"}, {{"a"}}, zero_order), std::runtime_error);
  BleuOptions bad_tok;
  bad_tok.tokenize = "moses";
  EXPECT_THROW(CorpusBleu({"a"}, {{"a"}}, bad_tok), std::runtime_error);
}

TEST(Bleu, SegmentStatsLayoutAndFromStats) {
  const SegmentStats stats = BleuSegmentStats({"a b c d e"}, {{"a b c x e"}});
  EXPECT_EQ(stats.width, 10);
  EXPECT_EQ(stats.values, (std::vector<int64_t>{5, 5, 4, 2, 1, 0, 5, 4, 3, 2}));
  EXPECT_NEAR(BleuFromStats(stats.Sum(), {}).score, std::pow(1e7 / 3, 0.25), kTight);
  EXPECT_THROW(BleuFromStats({1, 2, 3}, {}), std::runtime_error);
}

// ---- published sacreBLEU results ----------------------------------------------------------------

// sacreBLEU's test/test_bleu.py (test_corpus_bleu_cases): the README example, two references.
TEST(BleuSacreBleuCases, ReadmeCorpus) {
  const std::vector<std::string> hyps = {"The dog bit the man.", "It wasn't surprising.",
                                         "The man had just bitten him."};
  const std::vector<std::vector<std::string>> refs = {
      {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
      {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."}};
  EXPECT_NEAR(CorpusBleu(hyps, refs).score, 48.530827, 1e-6);
  BleuOptions none;
  none.tokenize = "none";
  EXPECT_NEAR(CorpusBleu(hyps, refs, none).score, 49.1919566, 1e-6);
  BleuOptions intl;
  intl.tokenize = "intl";
  EXPECT_NEAR(CorpusBleu(hyps, refs, intl).score, 43.91623493, 1e-6);
  EXPECT_EQ(CorpusBleu({"", "", ""}, refs).score, 0.0);
}

// sacreBLEU's test/test_sentence_bleu.py (example from its issue #98), tolerance 1e-3 as there.
TEST(BleuSacreBleuCases, SentenceBleuSmoothingAndTokenizers) {
  const std::string ref =
      "produc\xC5\xA3ia de zah\xC4\x83r brut se exprim\xC4\x83 \xC3\xAEn zah\xC4\x83r alb;";
  const std::string sys =
      "Produc\xC8\x9Bia de zah\xC4\x83r prim\xC4\x83 va fi exprimat\xC4\x83 \xC3\xAEn ceea ce "
      "prive\xC8\x99te zah\xC4\x83rul alb;";
  const auto score = [&](const std::string& method, double value, bool lc, const std::string& tok) {
    BleuOptions opt;
    opt.smooth_method = method;
    if (value > 0) opt.smooth_value = value;
    opt.lowercase = lc;
    opt.tokenize = tok;
    return SentenceBleu(sys, {ref}, opt).score;
  };
  EXPECT_NEAR(score("exp", 0, false, "13a"), 8.493, 1e-3);
  EXPECT_NEAR(score("none", 0, false, "13a"), 0.0, 1e-3);
  EXPECT_NEAR(score("floor", 0, false, "13a"), 4.51688, 1e-3);
  EXPECT_NEAR(score("floor", 0.5, false, "13a"), 10.10, 1e-3);
  EXPECT_NEAR(score("add-k", 0, false, "13a"), 14.882, 1e-3);
  EXPECT_NEAR(score("add-k", 2, false, "13a"), 21.389, 1e-3);
  EXPECT_NEAR(score("exp", 0, false, "none"), 7.347, 1e-3);
  EXPECT_NEAR(score("exp", 0, false, "intl"), 8.493, 1e-3);
  EXPECT_NEAR(score("exp", 0, false, "char"), 40.8759, 1e-3);
  EXPECT_NEAR(score("exp", 0, true, "char"), 42.0267, 1e-3);
}

}  // namespace
}  // namespace moebench
