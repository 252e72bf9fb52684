// Switch top-1: the properties of docs/METHODS.md section 9.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/routing_util.h"
#include "methods/switch.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

RouteContext Train() {
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 5;
  return ctx;
}

TEST(Switch, AuxLossIsExactlyOneWhenRouterIsUniform) {
  // All logits equal: P is uniform, so E * sum f_i P_i = sum f_i = 1 whatever f is.
  const at::Tensor logits = at::zeros({8, 4});
  Routing r = RouteTop1(logits, at::Tensor(), 8, SwitchOptions{}, Train());
  ASSERT_EQ(r.losses[0].name, "aux");
  EXPECT_FLOAT_EQ(r.losses[0].value.item<float>(), 1.0f);
  EXPECT_DOUBLE_EQ(r.losses[0].coef, 0.01);
}

TEST(Switch, AuxLossApproachesEWhenAllTokensPickOneExpertWithCertainty) {
  at::Tensor logits = at::zeros({6, 4});
  logits.select(1, 2).fill_(100.0);
  Routing r = RouteTop1(logits, at::Tensor(), 6, SwitchOptions{}, Train());
  EXPECT_NEAR(r.losses[0].value.item<float>(), 4.0f, 1e-4);
}

TEST(Switch, FirstComeTokensKeepTheSlotsAndNoExpertExceedsCapacity) {
  // Tokens 0..5 all prefer expert 1, token 6 prefers expert 0; capacity 2.
  at::Tensor logits = at::zeros({7, 3});
  logits.select(1, 1).slice(0, 0, 6).fill_(3.0);
  logits[6][0] = 3.0;
  Routing r = RouteTop1(logits, at::Tensor(), 2, SwitchOptions{}, Train());
  EXPECT_TRUE(at::equal(r.token, at::tensor({0, 1, 6}, at::kLong)));
  EXPECT_TRUE(at::equal(r.expert, at::tensor({1, 1, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(r.slot, at::tensor({0, 1, 0}, at::kLong)));
  EXPECT_EQ(r.dropped, 4);
  EXPECT_EQ(r.choices, 7);
}

TEST(Switch, CombineWeightIsTheTopProbabilityNotOne) {
  // logits (0, ln 3): p = (1/4, 3/4).
  at::Tensor logits = at::tensor({0.0f, std::log(3.0f)}).view({1, 2});
  Routing r = RouteTop1(logits, at::Tensor(), 1, SwitchOptions{}, Train());
  EXPECT_EQ(r.expert.item<int64_t>(), 1);
  EXPECT_NEAR(r.weight.item<float>(), 0.75f, 1e-6);
}

TEST(Switch, PadTokensGetNoAssignmentAndDoNotCount) {
  at::Tensor logits = at::zeros({4, 2});
  logits[0][1] = 1.0;
  logits[1][1] = 1.0;  // padding
  logits[2][1] = 1.0;
  at::Tensor pad = at::tensor({1, 0, 1, 1}).to(at::kBool);
  Routing r = RouteTop1(logits, pad, 2, SwitchOptions{}, Train());
  // Real tokens 0 and 2 fill expert 1's two slots; pad token 1 neither takes a slot nor drops.
  EXPECT_TRUE(at::equal(r.token, at::tensor({0, 2, 3}, at::kLong)));
  EXPECT_TRUE(at::equal(r.slot, at::tensor({0, 1, 0}, at::kLong)));
  EXPECT_EQ(r.choices, 3);
  EXPECT_EQ(r.dropped, 0);
}

TEST(Switch, ZLossOfZeroLogitsIsLogESquared) {
  const at::Tensor mask = PadMask(at::Tensor(), 5);
  EXPECT_NEAR(RouterZLoss(at::zeros({5, 8}), mask).item<float>(), std::pow(std::log(8.0), 2), 1e-5);
}

TEST(Switch, CapacityRoundsUpAndRespectsMinimum) {
  EXPECT_EQ(ExpertCapacity(1.25, 8, 2, 0), 5);
  EXPECT_EQ(ExpertCapacity(1.0, 10, 4, 0), 3);  // ceil(2.5)
  EXPECT_EQ(ExpertCapacity(1.0, 10, 4, 4), 4);  // min_capacity
}

TEST(Switch, GradientReachesTheRouterOnlyThroughP) {
  // d/dh_tj of E * sum_i f_i P_i with f constant = E/n * sum_i f_i p_ti (delta_ij - p_tj).
  at::manual_seed(3);
  const int64_t n = 6, e = 3;
  at::Tensor h = at::randn({n, e}).requires_grad_(true);
  at::Tensor probs = at::softmax(h, -1);
  at::Tensor aux = LoadBalanceLoss(probs, probs.argmax(-1), PadMask(at::Tensor(), n));
  aux.backward();
  at::Tensor p = probs.detach();
  at::Tensor f = at::one_hot(p.argmax(-1), e).to(at::kFloat).mean(0);  // [E]
  at::Tensor fp = (p * f).sum(-1, true);                               // sum_i f_i p_ti
  at::Tensor expected = static_cast<double>(e) / n * (p * f - p * fp);
  EXPECT_TRUE(testing::AllClose(h.grad(), expected, 1e-5, 1e-6));
}

TEST(Switch, JitterOnlyInTrainingAndRoutingIsDeterministicPerSeed) {
  at::manual_seed(11);
  SwitchRouter router(8, 4, SwitchOptions{});
  at::Tensor x = at::randn({16, 8});
  RouteContext eval;
  EXPECT_TRUE(at::equal(router.Logits(x, eval), router.Logits(x, eval)));
  EXPECT_TRUE(at::equal(router.Logits(x, eval), x.matmul(router.parameters()[0])));
  RouteContext train = Train();
  at::Tensor a = router.Logits(x, train);
  EXPECT_TRUE(at::equal(a, router.Logits(x, train)));  // same (seed, step, layer, group)
  EXPECT_FALSE(at::equal(a, router.Logits(x, eval)));
  train.step = 1;
  EXPECT_FALSE(at::equal(a, router.Logits(x, train)));
}

TEST(Switch, DroppedTokensGetZeroLayerOutputSoTheResidualCarriesThem) {
  // Router weight sends every token to expert 0; capacity ceil(1.0 * 8 / 4) = 2.
  LocalComm comm(Topology{1, 1});
  SwitchOptions opt;
  opt.capacity_factor = 1.0;
  opt.min_capacity = 0;
  opt.jitter = 0;
  auto router = std::make_shared<SwitchRouter>(4, 4, opt);
  {
    at::NoGradGuard no_grad;
    router->parameters()[0].zero_();
    router->parameters()[0][0][0] = 10.0;
  }
  MoeLayerOptions lo;
  lo.d_model = 4;
  lo.d_hidden = 8;
  lo.num_experts = 4;
  MoeLayer layer(lo, router, &comm);
  at::Tensor x = at::ones({8, 4});
  RouteContext ctx = Train();
  at::Tensor y = layer->forward(x, at::Tensor(), ctx);
  EXPECT_GT(y.slice(0, 0, 2).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(y.slice(0, 2, 8).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(layer->last_stats().dropped, 6);
  EXPECT_EQ(layer->last_stats().tokens_per_expert[0], 2);
}

}  // namespace
}  // namespace moebench
