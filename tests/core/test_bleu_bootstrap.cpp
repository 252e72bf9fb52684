// Paired bootstrap resampling. Exact expectations come from degenerate corpora whose every
// resample has the same score (so each p-value count is known), from the CI formula on a known
// list, and from statistical facts with wide margins.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/bleu/significance.h"

namespace moebench {
namespace {

// A corpus of `n` segments whose statistics are [value, 1] each; scored as sum0 / sum1, every
// resample scores exactly `value`.
SegmentStats ConstantCorpus(int64_t n, int64_t value) {
  SegmentStats stats;
  stats.num_segments = n;
  stats.width = 2;
  for (int64_t i = 0; i < n; ++i) {
    stats.values.push_back(value);
    stats.values.push_back(1);
  }
  return stats;
}

double MeanOfColumn0(const std::vector<int64_t>& sum) {
  return static_cast<double>(sum[0]) / static_cast<double>(sum[1]);
}

// 60 segments of random words: the baseline keeps ~50% of the reference tokens, the good system
// ~90%.
struct ToyCorpus {
  std::vector<std::string> refs, weak, strong;
};

ToyCorpus MakeToyCorpus() {
  const std::vector<std::string> words = {"the", "a",   "cat",  "dog",  "sat", "on",   "mat",
                                          "red", "big", "tree", "runs", "old", "blue", "house"};
  BootstrapRng rng(7);
  ToyCorpus corpus;
  for (int i = 0; i < 60; ++i) {
    std::string ref, weak, strong;
    const int length = 6 + static_cast<int>(rng.Below(8));
    for (int k = 0; k < length; ++k) {
      const std::string word = words[rng.Below(words.size())];
      const std::string other = words[rng.Below(words.size())];
      const std::string sep = k == 0 ? "" : " ";
      ref += sep + word;
      weak += sep + (rng.Below(2) == 0 ? word : other);
      strong += sep + (rng.Below(10) == 0 ? other : word);
    }
    corpus.refs.push_back(ref);
    corpus.weak.push_back(weak);
    corpus.strong.push_back(strong);
  }
  return corpus;
}

TEST(BleuEstimateCi, UsesOrderStatisticsAtOneFortiethFromEachEnd) {
  // 1..40 shuffled: n/40 = 1 -> lower = sorted[1] = 2, upper = sorted[38] = 39.
  std::vector<double> scores;
  for (int i = 40; i >= 1; --i) scores.push_back(i);
  const MeanAndCi estimate = EstimateCi(scores);
  EXPECT_DOUBLE_EQ(estimate.ci, 0.5 * (39 - 2));
  EXPECT_DOUBLE_EQ(estimate.mean, 20.5);
}

TEST(BleuPairedBootstrap, ConstantResamplesGiveKnownCountsUnderBothRules) {
  const std::vector<SegmentStats> systems = {ConstantCorpus(5, 10), ConstantCorpus(5, 20),
                                             ConstantCorpus(5, 3)};
  PairedBootstrapOptions opt;
  opt.num_samples = 99;
  const PairedBootstrapResult sacre = PairedBootstrap(systems, MeanOfColumn0, opt);
  ASSERT_EQ(sacre.systems.size(), 3u);
  EXPECT_FALSE(sacre.systems[0].p_value.has_value());
  EXPECT_DOUBLE_EQ(sacre.systems[1].score, 20);
  EXPECT_DOUBLE_EQ(sacre.systems[1].mean, 20);
  EXPECT_DOUBLE_EQ(sacre.systems[1].ci, 0);
  // sacreBLEU rule: every |d_i| equals |d|, centred they are 0, and 0 > |d| never holds.
  EXPECT_DOUBLE_EQ(*sacre.systems[1].p_value, 1.0 / 100);
  EXPECT_DOUBLE_EQ(*sacre.systems[2].p_value, 1.0 / 100);

  opt.p_value = BootstrapPValue::kOneSided;
  const PairedBootstrapResult one_sided = PairedBootstrap(systems, MeanOfColumn0, opt);
  // Better in every resample: count 0. Worse in every resample: count 99.
  EXPECT_DOUBLE_EQ(*one_sided.systems[1].p_value, 1.0 / 100);
  EXPECT_DOUBLE_EQ(*one_sided.systems[2].p_value, 1.0);
}

TEST(BleuPairedBootstrap, IdenticalSystems) {
  const ToyCorpus corpus = MakeToyCorpus();
  PairedBootstrapOptions opt;
  opt.num_samples = 200;
  opt.p_value = BootstrapPValue::kOneSided;
  const PairedBootstrapResult one_sided =
      PairedBootstrapBleu({corpus.weak, corpus.weak}, {corpus.refs}, {}, opt);
  // Never better than itself: (200 + 1) / (200 + 1).
  EXPECT_DOUBLE_EQ(*one_sided.systems[1].p_value, 1.0);
  EXPECT_DOUBLE_EQ(one_sided.systems[1].mean, one_sided.systems[0].mean);
  EXPECT_DOUBLE_EQ(one_sided.systems[1].ci, one_sided.systems[0].ci);

  // sacreBLEU's rule gives identical systems 1 / (n + 1): see Note [Paired bootstrap p-value].
  opt.p_value = BootstrapPValue::kSacreBleu;
  const PairedBootstrapResult sacre =
      PairedBootstrapBleu({corpus.weak, corpus.weak}, {corpus.refs}, {}, opt);
  EXPECT_DOUBLE_EQ(*sacre.systems[1].p_value, 1.0 / 201);
}

TEST(BleuPairedBootstrap, ClearlyBetterSystemIsSignificant) {
  const ToyCorpus corpus = MakeToyCorpus();
  for (BootstrapPValue rule : {BootstrapPValue::kSacreBleu, BootstrapPValue::kOneSided}) {
    PairedBootstrapOptions opt;
    opt.p_value = rule;
    const PairedBootstrapResult bleu =
        PairedBootstrapBleu({corpus.weak, corpus.strong}, {corpus.refs}, {}, opt);
    EXPECT_GT(bleu.systems[1].score, bleu.systems[0].score + 20);
    EXPECT_LT(*bleu.systems[1].p_value, 0.05);
    const PairedBootstrapResult chrf =
        PairedBootstrapChrf({corpus.weak, corpus.strong}, {corpus.refs}, {}, opt);
    EXPECT_LT(*chrf.systems[1].p_value, 0.05);
  }
}

TEST(BleuPairedBootstrap, MeanAndCiBracketTheCorpusScore) {
  const ToyCorpus corpus = MakeToyCorpus();
  const PairedBootstrapResult result =
      PairedBootstrapBleu({corpus.weak, corpus.strong}, {corpus.refs});
  EXPECT_EQ(result.num_samples, 1000);
  EXPECT_EQ(result.seed, 12345u);
  for (const BootstrapSystemResult& system : result.systems) {
    EXPECT_GT(system.ci, 0);
    EXPECT_LT(std::abs(system.mean - system.score), system.ci);
  }
}

TEST(BleuPairedBootstrap, DeterministicForASeed) {
  const ToyCorpus corpus = MakeToyCorpus();
  PairedBootstrapOptions opt;
  opt.num_samples = 100;
  const auto run = [&](uint64_t seed) {
    opt.seed = seed;
    return PairedBootstrapBleu({corpus.weak, corpus.strong}, {corpus.refs}, {}, opt);
  };
  const PairedBootstrapResult a = run(3);
  const PairedBootstrapResult b = run(3);
  const PairedBootstrapResult c = run(4);
  for (size_t s = 0; s < 2; ++s) {
    EXPECT_EQ(a.systems[s].mean, b.systems[s].mean);
    EXPECT_EQ(a.systems[s].ci, b.systems[s].ci);
  }
  EXPECT_EQ(*a.systems[1].p_value, *b.systems[1].p_value);
  EXPECT_NE(a.systems[0].mean, c.systems[0].mean);
}

TEST(BleuPairedBootstrap, RejectsBadShapes) {
  EXPECT_THROW(PairedBootstrap({ConstantCorpus(3, 1)}, MeanOfColumn0), std::runtime_error);
  EXPECT_THROW(PairedBootstrap({ConstantCorpus(3, 1), ConstantCorpus(4, 1)}, MeanOfColumn0),
               std::runtime_error);
  PairedBootstrapOptions none;
  none.num_samples = 0;
  EXPECT_THROW(PairedBootstrap({ConstantCorpus(3, 1), ConstantCorpus(3, 1)}, MeanOfColumn0, none),
               std::runtime_error);
}

// Segment i of the strata {0, 2, 5}, {1, 3}, {4} (interleaved, as languages can be).
const std::vector<std::vector<size_t>> kStrata = {{0, 2, 5}, {1, 3}, {4}};
const std::vector<int> kStratumOf = {0, 1, 0, 1, 2, 0};

// Statistics [1 when the segment is in stratum 0 else 0, 1]: summed over a resample, column 0
// counts the resample's segments of stratum 0.
SegmentStats StratumZeroIndicator() {
  SegmentStats stats;
  stats.num_segments = 6;
  stats.width = 2;
  for (int stratum : kStratumOf) {
    stats.values.push_back(stratum == 0 ? 1 : 0);
    stats.values.push_back(1);
  }
  return stats;
}

double Column0(const std::vector<int64_t>& sum) { return static_cast<double>(sum[0]); }

TEST(BleuPairedBootstrap, StratifiedResamplesKeepEachStratumsCount) {
  BootstrapRng rng(99);
  std::vector<int64_t> indices;
  std::vector<int> drawn(6, 0);
  for (int b = 0; b < 1000; ++b) {
    DrawResample(&rng, 6, kStrata, &indices);
    ASSERT_EQ(indices.size(), 6u);
    std::vector<int> per_stratum(3, 0);
    for (int64_t i : indices) {
      ASSERT_GE(i, 0);
      ASSERT_LT(i, 6);
      ++per_stratum[static_cast<size_t>(kStratumOf[static_cast<size_t>(i)])];
      ++drawn[static_cast<size_t>(i)];
    }
    ASSERT_EQ(per_stratum, (std::vector<int>{3, 2, 1})) << "resample " << b;
  }
  // With replacement and uniform within a stratum: stratum 0's 3000 draws give each of its
  // segments 1000 +- 26 (one standard deviation), stratum 1's 2000 draws 1000 +- 22; 150 is
  // more than 5 of them. Segment 4 is alone in its stratum: every resample holds it once.
  for (size_t i : {0, 1, 2, 3, 5}) EXPECT_NEAR(drawn[i], 1000, 150) << "segment " << i;
  EXPECT_EQ(drawn[4], 1000);

  // Through PairedBootstrap: every stratified resample has 3 segments of stratum 0, so its
  // score is 3 in every resample (interval 0); unstratified, the count is Binomial(6, 1/2).
  PairedBootstrapOptions opt;
  opt.num_samples = 200;
  opt.strata = kStrata;
  const PairedBootstrapResult stratified =
      PairedBootstrap({StratumZeroIndicator(), StratumZeroIndicator()}, Column0, opt);
  EXPECT_EQ(stratified.systems[0].mean, 3.0);
  EXPECT_EQ(stratified.systems[0].ci, 0.0);
  opt.strata.clear();
  const PairedBootstrapResult pooled =
      PairedBootstrap({StratumZeroIndicator(), StratumZeroIndicator()}, Column0, opt);
  EXPECT_GT(pooled.systems[0].ci, 0.0);

  // One stratum holding every segment in order draws exactly what the unstratified bootstrap
  // draws (Note [Stratified bootstrap]).
  BootstrapRng a(5), b(5);
  std::vector<int64_t> x, y;
  for (int i = 0; i < 100; ++i) {
    DrawResample(&a, 6, {}, &x);
    DrawResample(&b, 6, {{0, 1, 2, 3, 4, 5}}, &y);
    ASSERT_EQ(x, y);
  }
}

TEST(BleuPairedBootstrap, StrataMustPartitionTheSegments) {
  PairedBootstrapOptions opt;
  const std::vector<SegmentStats> two = {StratumZeroIndicator(), StratumZeroIndicator()};
  auto message = [&](std::vector<std::vector<size_t>> strata) {
    opt.strata = std::move(strata);
    try {
      PairedBootstrap(two, Column0, opt);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({{0, 1, 2}, {3, 4, 6}}),
            "bootstrap strata: stratum 1 holds segment 6 but there are 6 segments");
  EXPECT_EQ(message({{0, 1, 2}, {2, 3, 4, 5}}),
            "bootstrap strata: segment 2 is in more than one stratum (again in stratum 1)");
  EXPECT_EQ(message({{0, 1, 2}, {3, 5}}), "bootstrap strata: segment 4 is in no stratum");
  EXPECT_EQ(message({{0, 1, 2}, {}, {3, 4, 5}}), "no error");  // an empty stratum is no stratum
}

TEST(BleuPairedBootstrap, DifferencesComeFromTheResultsOwnResamples) {
  // The differences redraw PairedBootstrap's resamples, strata included: B - A with A the
  // stratum-0 count and B twice it is the count itself, 3 in every stratified resample.
  SegmentStats doubled = StratumZeroIndicator();
  for (size_t i = 0; i < doubled.values.size(); i += 2) doubled.values[i] *= 2;
  PairedBootstrapOptions opt;
  opt.num_samples = 100;
  opt.strata = kStrata;
  const std::vector<SegmentStats> stats = {StratumZeroIndicator(), doubled};
  const PairedBootstrapResult result = PairedBootstrap(stats, Column0, opt);
  const std::vector<BootstrapDifference> d = BootstrapDifferences(stats, Column0, opt, result);
  EXPECT_EQ(d[1].mean, 3.0);
  EXPECT_EQ(d[1].lower, 3.0);
  EXPECT_EQ(d[1].upper, 3.0);
  // Other options than the result's: other resamples, refused.
  opt.strata.clear();
  EXPECT_THROW(BootstrapDifferences(stats, Column0, opt, result), std::logic_error);
}

TEST(BleuBootstrapRng, BelowIsInRangeAndRoughlyUniform) {
  BootstrapRng rng(12345);
  std::vector<int> counts(10, 0);
  const int draws = 100000;
  for (int i = 0; i < draws; ++i) {
    const uint64_t value = rng.Below(10);
    ASSERT_LT(value, 10u);
    ++counts[value];
  }
  // Each bucket expects 10000 with a standard deviation of ~95; 5% is > 5 sigma.
  for (int count : counts) EXPECT_NEAR(count, draws / 10, draws / 10 / 20);
  BootstrapRng same(12345);
  BootstrapRng again(12345);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(same.Next(), again.Next());
}

}  // namespace
}  // namespace moebench
