// GShard top-2: docs/METHODS.md section 9 properties.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <set>

#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/gshard.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

RouteContext Train(uint64_t seed = 3) {
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = seed;
  return ctx;
}

GShardOptions PolicyAll() {
  GShardOptions o;
  o.second_policy = SecondPolicy::kAll;
  return o;
}

TEST(GShard, AtMostTwoAssignmentsAndNormalisedGates) {
  at::manual_seed(1);
  const at::Tensor logits = at::randn({50, 6});
  Routing r = RouteTop2(logits, at::Tensor(), 1000, PolicyAll(), Train());
  ASSERT_EQ(r.token.size(0), 100);  // policy all, no capacity pressure: both choices kept
  const at::Tensor per_token = at::bincount(r.token, {}, 50);
  EXPECT_EQ(per_token.max().item<int64_t>(), 2);
  const at::Tensor sums = at::zeros({50}).index_add(0, r.token, r.weight);
  EXPECT_TRUE(at::allclose(sums, at::ones({50}), 1e-5, 1e-6));
  // Second choices (listed after the first choices) weigh at most 0.5.
  EXPECT_LE(r.weight.slice(0, 50, 100).max().item<float>(), 0.5f + 1e-6f);
}

TEST(GShard, DroppedSecondChoiceLeavesFirstWeightBelowOneInPaperMode) {
  // Token 0: p = (0.6, 0.3, 0.1), e1 = 0, e2 = 1. Token 1: p = (0.3, 0.6, 0.1), e1 = 1, e2 = 0.
  // Capacity 1: both first choices fill the two experts, both second choices drop.
  const float l3 = std::log(3.0f), l6 = std::log(6.0f);
  const at::Tensor logits = at::tensor({l6, l3, 0.0f, l3, l6, 0.0f}).view({2, 3});
  GShardOptions opt = PolicyAll();
  Routing r = RouteTop2(logits, at::Tensor(), 1, opt, Train());
  ASSERT_TRUE(at::equal(r.token, at::tensor({0, 1}, at::kLong)));
  EXPECT_EQ(r.dropped, 2);
  EXPECT_NEAR(r.weight[0].item<float>(), 2.0f / 3.0f, 1e-6);  // g1n, not 1
  EXPECT_NEAR(r.weight[1].item<float>(), 2.0f / 3.0f, 1e-6);
  opt.normalize = GateNormalize::kAfter;  // fairseq: a lone survivor gets weight 1
  Routing a = RouteTop2(logits, at::Tensor(), 1, opt, Train());
  EXPECT_NEAR(a.weight[0].item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(a.weight[1].item<float>(), 1.0f, 1e-6);
}

TEST(GShard, AllFirstChoicesGetSlotsBeforeAnySecondChoice) {
  // Tokens 0,1: first choice expert 1, second expert 0. Tokens 2,3: first 0, second 1.
  at::Tensor logits = at::zeros({4, 2});
  logits[0][1] = 2.0;
  logits[1][1] = 2.0;
  logits[2][0] = 2.0;
  logits[3][0] = 2.0;
  Routing r = RouteTop2(logits, at::Tensor(), 2, PolicyAll(), Train());
  // Every expert is filled by first choices; all second choices drop, though tokens 0 and 1
  // come first in token order.
  EXPECT_EQ(r.token.size(0), 4);
  EXPECT_EQ(r.dropped, 4);
  EXPECT_TRUE(at::equal(r.dropped_choice, at::ones({4}, at::kLong)));
}

TEST(GShard, RandomPolicyKeepsSecondExpertWithProbabilityTwiceItsGate) {
  // p = (0.6, 0.15, 0.25): g1n = 0.6/0.85, g2n = 0.25/0.85; keep rate 2*g2n = 0.588.
  const int64_t n = 4000;
  const at::Tensor row = at::log(at::tensor({0.6f, 0.15f, 0.25f}));
  Routing r = RouteTop2(row.repeat({n, 1}), at::Tensor(), 100000, GShardOptions{}, Train(9));
  const double rate = 2.0 * 0.25 / 0.85;
  const double kept = static_cast<double>(r.token.size(0) - n);
  const double sd = std::sqrt(n * rate * (1 - rate));
  EXPECT_NEAR(kept, n * rate, 4 * sd);
  // Evaluation is deterministic top-2 unless asked otherwise.
  RouteContext eval;
  EXPECT_EQ(
      RouteTop2(row.repeat({n, 1}), at::Tensor(), 100000, GShardOptions{}, eval).token.size(0),
      2 * n);
}

// fairseq's normalize_gate_prob_before_dropping = False (our normalize = after) tests the raw
// gate: keep rate 2 * g2 = 2 * 0.25 = 0.5 here, not 2 * g2n = 0.588.
TEST(GShard, NormalizeAfterKeepsSecondExpertWithProbabilityTwiceItsRawGate) {
  const int64_t n = 4000;
  const at::Tensor row = at::log(at::tensor({0.6f, 0.15f, 0.25f}));
  GShardOptions after;
  after.normalize = GateNormalize::kAfter;
  Routing r = RouteTop2(row.repeat({n, 1}), at::Tensor(), 100000, after, Train(9));
  const double rate = 2.0 * 0.25;
  const double kept = static_cast<double>(r.token.size(0) - n);
  const double sd = std::sqrt(n * rate * (1 - rate));  // 31.6; 2 * g2n would be 5.5 sd away
  EXPECT_NEAR(kept, n * rate, 4 * sd);
}

// A saturated softmax: logits (200, 0, 10, -5) in fp32 give probabilities (1, 0, 0, 0), exactly.
// The second choice is the argmax of the logits without the first (DeepSpeed and fairseq
// top2gating): expert 2 (logit 10), not expert 1 (the first of the tied zero probabilities).
// Likewise (-5, 300, 0, 40) -> first 1, second 3.
TEST(GShard, SecondChoiceOnSaturatedProbabilitiesIsTheNextBestLogit) {
  const at::Tensor logits =
      at::tensor({200.0f, 0.0f, 10.0f, -5.0f, -5.0f, 300.0f, 0.0f, 40.0f}).view({2, 4});
  const at::Tensor probs = at::softmax(logits, -1);
  ASSERT_EQ(probs[0][1].item<float>(), 0.0f);  // the tie the old rule broke by index
  ASSERT_EQ(probs[0][2].item<float>(), 0.0f);
  RouteContext eval;  // deterministic top-2
  Routing r = RouteTop2(logits, at::Tensor(), 100, PolicyAll(), eval);
  ASSERT_EQ(r.token.size(0), 4);
  std::set<std::pair<int64_t, int64_t>> got;
  for (int64_t i = 0; i < 4; ++i) {
    got.insert({r.token[i].item<int64_t>(), r.expert[i].item<int64_t>()});
  }
  const std::set<std::pair<int64_t, int64_t>> want = {{0, 0}, {0, 2}, {1, 1}, {1, 3}};
  EXPECT_EQ(got, want);
}

TEST(GShard, CodeFormAuxLossIsOneWhenTopOneCountsAreUniform) {
  at::manual_seed(4);
  at::Tensor logits = at::randn({8, 4}) * 0.1;
  for (int t = 0; t < 8; ++t) logits[t][t % 4] += 5.0;  // two first choices per expert
  Routing r = RouteTop2(logits, at::Tensor(), 8, PolicyAll(), Train());
  ASSERT_EQ(r.losses[0].name, "aux");
  EXPECT_NEAR(r.losses[0].value.item<float>(), 1.0f, 1e-5);
}

TEST(GShard, PerGroupCapacityIsTwiceCfTimesGroupOverExperts) {
  GShardRouter router(8, 4, GShardOptions{});
  RouteContext train, eval;
  train.training = true;
  EXPECT_EQ(router.CapacityFor(8, 8, train), 4);    // 2 * 1.0 * 8 / 4
  EXPECT_EQ(router.CapacityFor(10, 10, train), 5);  // ceil(2 * 10 / 4)
  EXPECT_EQ(router.CapacityFor(10, 10, eval), 10);  // inference never drops by default
}

TEST(GShard, GroupsAreIndependent) {
  // Two workers route their own halves; changing worker 1's tokens leaves worker 0's
  // assignments unchanged.
  at::manual_seed(5);
  LocalComm comm(Topology{2, 1});
  MoeLayerOptions lo;
  lo.d_model = 8;
  lo.d_hidden = 8;
  lo.num_experts = 4;
  MoeLayer layer(lo, std::make_shared<GShardRouter>(8, 4, GShardOptions{}), &comm);
  at::Tensor x = at::randn({20, 8});
  RouteContext ctx = Train();
  layer->forward(x, at::Tensor(), ctx);
  const LayerAssignments a = layer->last_assignments();
  at::Tensor x2 = x.clone();
  x2.slice(0, 10, 20).normal_();
  layer->forward(x2, at::Tensor(), ctx);
  const LayerAssignments b = layer->last_assignments();
  const at::Tensor in_a = a.token < 10, in_b = b.token < 10;
  EXPECT_TRUE(at::equal(a.token.masked_select(in_a), b.token.masked_select(in_b)));
  EXPECT_TRUE(at::equal(a.expert.masked_select(in_a), b.expert.masked_select(in_b)));
}

}  // namespace
}  // namespace moebench
