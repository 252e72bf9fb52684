// Micro-batches of a step (Note [Gradient accumulation] in harness/train/expert_parallel.h):
// chunk i of every worker block, trimmed to its longest sentences, the step's normaliser kept.
#include <gtest/gtest.h>

#include "harness/train/expert_parallel.h"

namespace moebench {
namespace {

// Six right-padded sentences of width 5; sentence r holds the value r + 1 in its first
// length(r) columns (source) and 10 * (r + 1) (targets).
Batch SixSentences() {
  const std::vector<int64_t> src_len = {5, 2, 3, 1, 4, 2}, tgt_len = {2, 3, 1, 4, 2, 2};
  Batch b;
  b.src = at::zeros({6, 5}, at::kLong);
  b.tgt_in = at::zeros({6, 5}, at::kLong);
  b.tgt_out = at::zeros({6, 5}, at::kLong);
  for (int64_t r = 0; r < 6; ++r) {
    b.src[r].narrow(0, 0, src_len[r]).fill_(r + 1);
    b.tgt_in[r].narrow(0, 0, tgt_len[r]).fill_(10 * (r + 1));
    b.tgt_out[r].narrow(0, 0, tgt_len[r]).fill_(10 * (r + 1));
    b.rows.push_back(100 + r);
  }
  b.src_lengths = src_len;
  b.tgt_lengths = tgt_len;
  b.ntokens = 14;
  return b;
}

TEST(GradAccum, MicroBatchIHoldsChunkIOfEveryWorkerBlock) {
  // 2 worker blocks (sentences 0-2 and 3-5), 3 micro-batches: {0, 3}, {1, 4}, {2, 5}.
  const std::vector<Batch> m = MicroBatches(SixSentences(), 3, 2);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].rows, (std::vector<int64_t>{100, 103}));
  EXPECT_EQ(m[1].rows, (std::vector<int64_t>{101, 104}));
  EXPECT_EQ(m[2].rows, (std::vector<int64_t>{102, 105}));
  // Trimmed to the longest: sources 5 and 1 -> width 5; 2 and 4 -> 4; 3 and 2 -> 3. Targets
  // 2 and 4 -> 4; 3 and 2 -> 3; 1 and 2 -> 2.
  EXPECT_EQ(m[0].src.sizes(), (at::IntArrayRef{2, 5}));
  EXPECT_EQ(m[1].src.sizes(), (at::IntArrayRef{2, 4}));
  EXPECT_EQ(m[2].src.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(m[0].tgt_in.size(1), 4);
  EXPECT_EQ(m[1].tgt_out.size(1), 3);
  EXPECT_EQ(m[2].tgt_in.size(1), 2);
  EXPECT_EQ(m[1].src[1][0].item<int64_t>(), 5);       // sentence 4's
  EXPECT_EQ(m[2].tgt_out[0][0].item<int64_t>(), 30);  // sentence 2's
  EXPECT_EQ(m[1].src_lengths, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(m[2].tgt_lengths, (std::vector<int64_t>{1, 2}));
  // Every micro-batch keeps the step's target tokens as its normaliser.
  for (const Batch& b : m) EXPECT_EQ(b.ntokens, 14);
}

TEST(GradAccum, OneBlockSplitsInOrderAndOneMicroBatchIsTheBatch) {
  const std::vector<Batch> m = MicroBatches(SixSentences(), 2, 1);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].rows, (std::vector<int64_t>{100, 101, 102}));
  EXPECT_EQ(m[1].rows, (std::vector<int64_t>{103, 104, 105}));
  const std::vector<Batch> one = MicroBatches(SixSentences(), 1, 2);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_TRUE(at::equal(one[0].src, SixSentences().src));
}

TEST(GradAccum, TooFewSentencesPerWorkerIsRefusedNamingTheKnob) {
  // 2 blocks of 3 sentences cannot make 4 micro-batches.
  try {
    MicroBatches(SixSentences(), 4, 2);
    FAIL() << "accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("grad_accum 4"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("3 sentences"), std::string::npos) << e.what();
  }
}

// RankShares describes each rank's micro-batches as RankSlice and MicroBatches cut them
// (hand-checked for 2 ranks and 3 micro-batches: rank 0 holds sentences 0-2, rank 1 3-5, one
// sentence per micro-batch; one micro-batch keeps the batch's width 5), and agrees with them
// for 3 ranks and 2 micro-batches too.
TEST(GradAccum, RankSharesDescribeEveryRanksMicroBatches) {
  const Batch batch = SixSentences();
  const auto shares = RankShares(batch, 2, 3);
  ASSERT_EQ(shares.size(), 3u);
  ASSERT_EQ(shares[1].size(), 2u);
  EXPECT_EQ(shares[1][0].src_lengths, (std::vector<int64_t>{2}));  // sentence 1
  EXPECT_EQ(shares[1][1].tgt_lengths, (std::vector<int64_t>{2}));  // sentence 4
  EXPECT_EQ(shares[1][1].src_len, 4);
  EXPECT_EQ(shares[2][0].tgt_len, 1);  // sentence 2's target alone: width 1
  const auto one = RankShares(batch, 2, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0][1].src_lengths, (std::vector<int64_t>{1, 4, 2}));
  EXPECT_EQ(one[0][1].src_len, 5);
  EXPECT_EQ(one[0][0].tgt_len, 5);
  for (const int world : {2, 3}) {
    for (const int64_t a : {int64_t{1}, int64_t{2}}) {
      const auto got = RankShares(batch, world, a);
      for (int r = 0; r < world; ++r) {
        const std::vector<Batch> m = MicroBatches(RankSlice(batch, r, world), a, 1);
        ASSERT_EQ(got.size(), m.size());
        for (size_t i = 0; i < m.size(); ++i) {
          const RankShare& s = got[i][static_cast<size_t>(r)];
          EXPECT_EQ(s.src_lengths, m[i].src_lengths) << world << " ranks, micro " << i;
          EXPECT_EQ(s.tgt_lengths, m[i].tgt_lengths);
          EXPECT_EQ(s.src_len, m[i].src.size(1));
          EXPECT_EQ(s.tgt_len, m[i].tgt_in.size(1));
        }
      }
    }
  }
}

}  // namespace
}  // namespace moebench
