// chrF and chrF++. Hand-computed cases list the n-grams per order; P and R are per-order
// precision and recall, averaged over the orders where both sides have n-grams (sacreBLEU 2.x's
// default), then F_beta = (1 + b^2) P R / (b^2 P + R).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bleu/chrf.h"

namespace moebench {
namespace {

constexpr double kTight = 1e-9;

double Chrf(const std::string& hyp, const std::string& ref, const ChrfOptions& opt = {}) {
  return CorpusChrf({hyp}, {{ref}}, opt).score;
}

TEST(Chrf, IdenticalStringsScore100) {
  EXPECT_NEAR(Chrf("the cat sat on the mat", "the cat sat on the mat"), 100.0, kTight);
  ChrfOptions plus;
  plus.word_order = 2;
  EXPECT_NEAR(Chrf("the cat sat on the mat", "the cat sat on the mat", plus), 100.0, kTight);
}

TEST(Chrf, AveragesOnlyOrdersPresentOnBothSides) {
  // hyp "ab" / ref "ac": 1-grams a,b vs a,c: P = R = 1/2; 2-grams ab vs ac: P = R = 0;
  // orders 3-6 have no n-grams and are skipped. P = R = 1/4, so F = 1/4.
  EXPECT_NEAR(Chrf("ab", "ac"), 25.0, kTight);
}

TEST(Chrf, BetaWeighsRecall) {
  // hyp "abc" / ref "ab": 1-grams P = 2/3, R = 1; 2-grams ab,bc vs ab: P = 1/2, R = 1;
  // 3-gram "abc" has no reference 3-gram: skipped. P = 7/12, R = 1,
  // F2 = 5 * 7/12 / (4 * 7/12 + 1) = 35/40.
  EXPECT_NEAR(Chrf("abc", "ab"), 87.5, kTight);
  ChrfOptions beta1;
  beta1.beta = 1;  // F1 = 2 * 7/12 / (7/12 + 1) = 14/19
  EXPECT_NEAR(Chrf("abc", "ab", beta1), 100.0 * 14 / 19, kTight);
}

TEST(Chrf, IgnoresWhitespaceByDefault) {
  EXPECT_NEAR(Chrf("a b", "ab"), 100.0, kTight);
  // Keeping it: 1-grams a,' ',b vs a,b: P = 2/3, R = 1; 2-grams "a ", " b" vs "ab": 0, 0;
  // 3-gram "a b" has no reference 3-gram. P = 1/3, R = 1/2, F2 = (5/6) / (4/3 + 1/2) = 5/11.
  ChrfOptions keep;
  keep.whitespace = true;
  EXPECT_NEAR(Chrf("a b", "ab", keep), 100.0 * 5 / 11, kTight);
}

TEST(Chrf, ChrfPlusPlusAddsWordNgrams) {
  // char order 1, word order 2; hyp "ab cd" / ref "ab ce":
  //   chars a,b,c,d vs a,b,c,e: P = R = 3/4; words ab,cd vs ab,ce: P = R = 1/2;
  //   word bigram "ab cd" vs "ab ce": 0. P = R = (3/4 + 1/2 + 0) / 3 = 5/12 = F.
  ChrfOptions opt;
  opt.char_order = 1;
  opt.word_order = 2;
  EXPECT_NEAR(Chrf("ab cd", "ab ce", opt), 100.0 * 5 / 12, kTight);
}

TEST(Chrf, WordNgramsSplitOnePunctuationMarkOffAWord) {
  // Words only: "hello," becomes "hello" and ",": hyp hello , world vs ref hello world:
  // P = 2/3, R = 1, F2 = (10/3) / (8/3 + 1) = 10/11. Without the split it would be 50.
  ChrfOptions words;
  words.char_order = 0;
  words.word_order = 1;
  EXPECT_NEAR(Chrf("hello, world", "hello world", words), 100.0 * 10 / 11, kTight);
  // "(hi)" loses only its final ')' (sacreBLEU's issue #124): "(hi" and ")" share no word
  // with "hi", so the score is 0 (a full split would have matched "hi").
  EXPECT_EQ(Chrf("(hi)", "hi", words), 0.0);
}

TEST(Chrf, MultipleReferencesKeepTheBestF) {
  EXPECT_NEAR(CorpusChrf({"ab"}, {{"xy"}, {"ab"}}).score, 100.0, kTight);
  EXPECT_NEAR(CorpusChrf({"ab"}, {{"ab"}, {"xy"}}).score, 100.0, kTight);
}

TEST(Chrf, CorpusSumsStatisticsBeforeScoring) {
  // Segment "ab"/"ac" gives 1-gram (2, 2, 1), 2-gram (1, 1, 0); segment "a"/"a" gives
  // 1-gram (1, 1, 1) and no 2-grams. Sums: 1-gram P = R = 2/3, 2-gram P = R = 0 -> F = 1/3.
  EXPECT_NEAR(CorpusChrf({"ab", "a"}, {{"ac", "a"}}).score, 100.0 / 3, kTight);
}

TEST(Chrf, EpsilonSmoothingAveragesPerOrderF) {
  // sacreBLEU's test/test_chrf.py (beta 3, eps_smoothing): "aa" / "ab" = 8.3333: order 1 has
  // F = 10 * 1/4 / (9/2 + 1/2) = 1/2, the other five orders ~1e-16, so 100 * (1/2) / 6.
  ChrfOptions eps;
  eps.beta = 3;
  eps.eps_smoothing = true;
  EXPECT_NEAR(Chrf("aa", "ab", eps), 100.0 / 12, 1e-9);
  EXPECT_NEAR(Chrf("a b c", "abc", eps), 50.0, 1e-9);  // orders 1-3 perfect, 4-6 empty
  eps.beta = 3;
  eps.eps_smoothing = false;
  EXPECT_NEAR(Chrf("aa", "ab", eps), 25.0, kTight);  // same file, effective-order mode
}

TEST(Chrf, LowercaseOption) {
  EXPECT_LT(Chrf("The Cat", "the cat"), 100.0);
  ChrfOptions lc;
  lc.lowercase = true;
  EXPECT_NEAR(Chrf("The Cat", "the cat", lc), 100.0, kTight);
}

TEST(Chrf, EmptyHypothesisScoresZero) { EXPECT_EQ(Chrf("", "reference"), 0.0); }

TEST(Chrf, EmptyReferenceAddsNothingToTheCorpus) {
  // sacreBLEU >= 2.0.1 keeps empty references. The empty reference has no n-grams of any order,
  // so segment 2's statistics are all 0: its hypothesis n-grams are not counted for an order the
  // reference lacks. The corpus is then segment 1 alone, which is perfect: 100.
  EXPECT_NEAR(CorpusChrf({"abc", "xyz"}, {{"abc", ""}}).score, 100.0, kTight);
  EXPECT_EQ(SentenceChrf("xyz", {""}).score, 0.0);
  EXPECT_EQ(CorpusChrf({"abc", "xyz"}, {{"abc", ""}}).signature,
            "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1");
}

TEST(Chrf, NamesAndSignatures) {
  const ChrfScore plain = CorpusChrf({"a"}, {{"a"}});
  EXPECT_EQ(plain.name, "chrF2");
  EXPECT_EQ(plain.signature, "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.3.1");
  EXPECT_EQ(plain.Format(), "chrF2 = 100.00");

  ChrfOptions plus;
  plus.word_order = 2;
  plus.lowercase = true;
  plus.whitespace = true;
  plus.eps_smoothing = true;
  const ChrfScore pp = CorpusChrf({"a"}, {{"a"}, {"b"}}, plus);
  EXPECT_EQ(pp.name, "chrF2++");
  EXPECT_EQ(pp.signature, "nrefs:2|case:lc|eff:no|nc:6|nw:2|space:yes|version:2.3.1");
}

TEST(Chrf, SentenceChrfEqualsOneSegmentCorpus) {
  EXPECT_NEAR(SentenceChrf("ab", {"ac"}).score, 25.0, kTight);
}

TEST(Chrf, RejectsBadInput) {
  EXPECT_THROW(CorpusChrf({"a", "b"}, {{"a"}}), std::runtime_error);
  ChrfOptions none;
  none.char_order = 0;
  none.word_order = 0;
  EXPECT_THROW(CorpusChrf({"a"}, {{"a"}}, none), std::runtime_error);
  EXPECT_THROW(ChrfFromStats({1, 2}, {}), std::runtime_error);
}

// ---- published sacreBLEU results ----------------------------------------------------------------

// sacreBLEU's test/test_chrf.py: test_sentence_level_chrf (eps smoothing, beta 2) and
// test_cases_keep_whitespace (beta 3, whitespace kept), tolerance 1e-4 as there.
TEST(ChrfSacreBleuCases, SentenceLevelAndKeepWhitespace) {
  ChrfOptions eps;
  eps.eps_smoothing = true;
  EXPECT_NEAR(SentenceChrf("Co n\xC3\xA1s nejv\xC3\xAD"
                           "c tr\xC3\xA1p\xC3\xAD, proto\xC5\xBE"
                           "e l\xC3\xA9ka\xC5\x99i si "
                           "vyb\xC3\xADraj\xC3\xAD, kdo bude \xC5\xBE\xC3\xADt a kdo zem\xC5\x99"
                           "e.",
                           {"Nejv\xC3\xAD"
                            "ce smutn\xC3\xAD jsme z toho, \xC5\xBE"
                            "e mus\xC3\xADme rozhodovat o "
                            "tom, kdo bude \xC5\xBE\xC3\xADt a kdo zem\xC5\x99"
                            "e."},
                           eps)
                  .score,
              39.14078509, 1e-4);

  ChrfOptions keep;
  keep.beta = 3;
  keep.whitespace = true;
  EXPECT_NEAR(Chrf("risk assessment must be made of those who are qualified and expertise in the "
                   "sector - these are the scientists .",
                   "risk assessment has to be undertaken by those who are qualified and expert in "
                   "that area - that is the scientists .",
                   keep),
              65.2414427, 1e-4);
}

}  // namespace
}  // namespace moebench
