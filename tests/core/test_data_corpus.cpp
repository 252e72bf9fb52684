// The corpus hash, the hash-based split and the portable PRNG under the data recipes.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "datasets/corpus.h"
#include "datasets/prng.h"
#include "datasets/split.h"

namespace moebench {
namespace {

TEST(CorpusHash, EmptyCorpusHashesTheCanonicalHeader) {
  // sha256sum of "moebench-corpus-v1\ntrain 0\nvalid 0\ntest 0\n".
  ParallelCorpus corpus;
  EXPECT_EQ(ComputeCorpusHash(corpus),
            "e73ff6378b50368aba8ebaa12915c97b1abfb535f830e0f249b9a24a246b9cd1");
}

TEST(CorpusHash, SerialisesLengthPrefixedFields) {
  // sha256sum of the serialisation written out by hand.
  ParallelCorpus corpus;
  corpus.train = {{"de", "hello", "hallo"}};
  corpus.test = {{"fr", "yes", "oui"}};
  EXPECT_EQ(ComputeCorpusHash(corpus),
            "7ad432b69a643eb43f51399190b1e6b0f7dfeb911326e84fc4da8d63a9e6f4e5");
}

TEST(CorpusHash, ChangesWithFieldBoundariesAndSplits) {
  ParallelCorpus a, b, c;
  a.train = {{"de", "ab", "c"}};
  b.train = {{"de", "a", "bc"}};
  c.valid = {{"de", "ab", "c"}};
  EXPECT_NE(ComputeCorpusHash(a), ComputeCorpusHash(b));
  EXPECT_NE(ComputeCorpusHash(a), ComputeCorpusHash(c));
}

TEST(CorpusHash, IgnoresNameAndProvenance) {
  ParallelCorpus a, b;
  a.train = b.train = {{"de", "x", "y"}};
  a.name = "files";
  b.name = "l10n";
  b.provenance = {{"k", 1}};
  EXPECT_EQ(ComputeCorpusHash(a), ComputeCorpusHash(b));
}

TEST(FormatCorpusSizes, TabulatesExamplesPerLanguageAndSplit) {
  ParallelCorpus corpus;
  corpus.langs = {"fr", "de"};
  corpus.train = {{"de", "a", "b"}, {"fr", "a", "c"}, {"de", "d", "e"}};
  corpus.test = {{"fr", "f", "g"}, {"xx", "h", "i"}};
  corpus.content_hash = "abc";
  // Columns: "%-8s %8d %8d %8d".
  EXPECT_EQ(FormatCorpusSizes(corpus),
            "lang        train    valid     test\n"
            "fr              1        0        1\n"
            "de              2        0        0\n"
            "xx              0        0        1\n"
            "total"
            "           3        0        2\n"
            "content_hash abc\n");
}

TEST(SplitMix64, MatchesReferenceSequenceForSeedZero) {
  // Published outputs of Vigna's splitmix64.c seeded with 0.
  SplitMix64 rng(0);
  EXPECT_EQ(rng.Next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.Next(), 0x6e789e6aa1b965f4ULL);
  EXPECT_EQ(rng.Next(), 0x06c45d188009454fULL);
}

TEST(SplitMix64, BelowAndBetweenStayInRangeAndCoverIt) {
  SplitMix64 rng(7);
  std::set<int64_t> seen;
  for (int i = 0; i < 2000; ++i) {
    int64_t v = rng.Between(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
    seen.insert(v);
    ASSERT_EQ(rng.Below(1), 0u);
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_THROW(rng.Below(0), std::runtime_error);
  EXPECT_THROW(rng.Between(2, 1), std::runtime_error);
}

TEST(SplitMix64, UnitIsInHalfOpenInterval) {
  SplitMix64 rng(3);
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    double u = rng.Unit();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);
}

TEST(SplitMix64, ShuffleIsAPermutationAndSeeded) {
  std::vector<int> a(50), b;
  for (int i = 0; i < 50; ++i) a[i] = i;
  b = a;
  std::vector<int> c = a;
  SplitMix64(11).Shuffle(a);
  SplitMix64(11).Shuffle(b);
  SplitMix64(12).Shuffle(c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::set<int>(a.begin(), a.end()).size(), 50u);
}

TEST(StableHash64, IsFnv1aFinishedWithMix64) {
  // SplitMix64's first output from seed 0 is Mix64 of its increment.
  EXPECT_EQ(Mix64(0x9e3779b97f4a7c15ULL), 0xe220a8397b1dcdafULL);
  // FNV-1a 64 offset basis (empty input) and FNV-1a("a") from the FNV reference.
  EXPECT_EQ(StableHash64(""), Mix64(0xcbf29ce484222325ULL));
  EXPECT_EQ(StableHash64("a"), Mix64(0xaf63dc4c8601ec8cULL));
}

TEST(SplitForSource, RespectsFractionsAndIsAFunctionOfTheSource) {
  int counts[3] = {0, 0, 0};
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    std::string src = "sentence " + std::to_string(i);
    Split split = SplitForSource(src, 0.1, 0.2);
    ASSERT_EQ(split, SplitForSource(src, 0.1, 0.2));
    ++counts[static_cast<int>(split)];
  }
  EXPECT_NEAR(counts[0] / double(n), 0.7, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.1, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.2, 0.02);
}

TEST(SplitForSource, ZeroFractionsSendEverythingToTrain) {
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(SplitForSource(std::to_string(i), 0, 0), Split::kTrain);
  }
  EXPECT_STREQ(SplitName(Split::kValid), "valid");
}

TEST(SplitForSource, RejectsBadFractions) {
  EXPECT_THROW(SplitForSource("x", -0.1, 0), std::runtime_error);
  EXPECT_THROW(SplitForSource("x", 0.6, 0.5), std::runtime_error);
}

}  // namespace
}  // namespace moebench
