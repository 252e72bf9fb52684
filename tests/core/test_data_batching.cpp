#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "datasets/batching.h"
#include "datasets/prng.h"

namespace moebench {
namespace {

int64_t Cost(const std::vector<int64_t>& batch, const std::vector<int>& src,
             const std::vector<int>& tgt) {
  int64_t longest = 0;
  for (int64_t i : batch) longest = std::max<int64_t>(longest, std::max(src[i], tgt[i]));
  return static_cast<int64_t>(batch.size()) * longest;
}

TEST(MakeTokenBatches, GroupsAHandBuiltExampleBySortedLength) {
  // Effective lengths max(src, tgt) = {2, 5, 2, 8, 9}; with 8 tokens: {0, 2} costs 2 * 2 = 4
  // (adding 1 would cost 3 * 5 = 15), {1} costs 5, {3} costs 8, and {4} costs 9 alone.
  std::vector<int> src = {1, 5, 2, 8, 3};
  std::vector<int> tgt = {2, 1, 2, 1, 9};
  auto batches = MakeTokenBatches(src, tgt, 8, false, 0);
  std::vector<std::vector<int64_t>> expected = {{0, 2}, {1}, {3}, {4}};
  EXPECT_EQ(batches, expected);
}

TEST(MakeTokenBatches, FillsBatchesUpToTheBudget) {
  std::vector<int> lens(10, 3);
  auto batches = MakeTokenBatches(lens, lens, 12, false, 0);  // 4 sentences of 3 = 12 tokens
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0], (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(batches[1], (std::vector<int64_t>{4, 5, 6, 7}));
  EXPECT_EQ(batches[2], (std::vector<int64_t>{8, 9}));
}

class RandomLengths : public ::testing::Test {
 protected:
  void SetUp() override {
    SplitMix64 rng(42);
    for (int i = 0; i < 3000; ++i) {
      src_.push_back(static_cast<int>(rng.Between(1, 60)));
      tgt_.push_back(static_cast<int>(rng.Between(1, 80)));
    }
    src_[17] = 500;  // longer than the budget on its own
  }
  std::vector<int> src_, tgt_;
};

TEST_F(RandomLengths, EveryIndexAppearsExactlyOnce) {
  auto batches = MakeTokenBatches(src_, tgt_, 400, true, 9);
  std::vector<int> seen(src_.size(), 0);
  for (const auto& batch : batches) {
    ASSERT_FALSE(batch.empty());
    for (int64_t i : batch) ++seen[i];
  }
  for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "index " << i;
}

TEST_F(RandomLengths, CostStaysWithinBudgetExceptOversizedSingletons) {
  auto batches = MakeTokenBatches(src_, tgt_, 400, true, 9);
  int singletons_over = 0;
  for (const auto& batch : batches) {
    int64_t cost = Cost(batch, src_, tgt_);
    if (cost > 400) {
      ASSERT_EQ(batch.size(), 1u) << "a multi-sentence batch costs " << cost;
      ++singletons_over;
    }
  }
  EXPECT_EQ(singletons_over, 1);  // index 17
}

TEST_F(RandomLengths, ShuffleIsSeededAndKeepsComposition) {
  auto a = MakeTokenBatches(src_, tgt_, 400, true, 9);
  auto b = MakeTokenBatches(src_, tgt_, 400, true, 9);
  auto c = MakeTokenBatches(src_, tgt_, 400, true, 10);
  auto sorted = MakeTokenBatches(src_, tgt_, 400, false, 9);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, sorted);
  std::set<std::vector<int64_t>> sa(a.begin(), a.end()), sc(c.begin(), c.end()),
      ss(sorted.begin(), sorted.end());
  EXPECT_EQ(sa, ss);
  EXPECT_EQ(sc, ss);
}

TEST_F(RandomLengths, UnshuffledBatchesAscendInLength) {
  auto batches = MakeTokenBatches(src_, tgt_, 400, false, 0);
  int previous = 0;
  for (const auto& batch : batches) {
    for (int64_t i : batch) {
      int len = std::max(src_[i], tgt_[i]);
      ASSERT_GE(len, previous);
      previous = len;
    }
  }
}

TEST(MakeTokenBatches, RejectsBadInput) {
  EXPECT_THROW(MakeTokenBatches({1, 2}, {1}, 10, false, 0), std::runtime_error);
  EXPECT_THROW(MakeTokenBatches({1}, {1}, 0, false, 0), std::runtime_error);
  EXPECT_THROW(MakeTokenBatches({-1}, {1}, 10, false, 0), std::runtime_error);
  EXPECT_TRUE(MakeTokenBatches({}, {}, 10, true, 0).empty());
}

}  // namespace
}  // namespace moebench
