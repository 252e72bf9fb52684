// SMoE-Dropout: docs/METHODS.md section 9 properties.
#include <gtest/gtest.h>

#include <torch/optim/adam.h>

#include "harness/comm/local_comm.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/moe_layer.h"
#include "methods/method.h"
#include "methods/smoe_dropout.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

TEST(SmoeDropout, FrozenRouterIsBitIdenticalAfterAnOptimizerStep) {
  at::manual_seed(1);
  LocalComm comm(Topology{1, 1});
  MoeLayerOptions lo;
  lo.d_model = 8;
  lo.d_hidden = 4;
  lo.num_experts = 4;
  auto router = std::make_shared<SmoeDropoutRouter>(8, 4, SmoeDropoutOptions{});
  MoeLayer layer(lo, router, &comm);
  std::vector<at::Tensor> before;
  for (const auto& p : router->parameters()) {
    EXPECT_FALSE(p.requires_grad());
    before.push_back(p.clone());
  }
  std::vector<at::Tensor> trainable;
  for (const auto& p : layer->parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  torch::optim::Adam adam(trainable, torch::optim::AdamOptions(0.1));
  RouteContext ctx;
  ctx.training = true;
  ctx.step = 5;
  ctx.total_steps = 10;
  layer->forward(at::randn({12, 8}), at::Tensor(), ctx).pow(2).sum().backward();
  adam.step();
  auto params = router->parameters();
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(at::equal(params[i], before[i]));
}

TEST(SmoeDropout, ScheduleRisesLinearlyFromKMinToKMax) {
  EXPECT_EQ(SmoeScheduleK(0, 100, 2, 16), 2);
  EXPECT_EQ(SmoeScheduleK(100, 100, 2, 16), 16);
  EXPECT_EQ(SmoeScheduleK(50, 100, 2, 16), 9);    // round(14 * 0.5) + 2
  EXPECT_EQ(SmoeScheduleK(150, 100, 2, 16), 16);  // clipped
  int64_t prev = 0;
  for (int s = 0; s <= 100; ++s) {
    const int64_t k = SmoeScheduleK(s, 100, 2, 16);
    EXPECT_GE(k, prev);
    prev = k;
  }
}

TEST(SmoeDropout, WeightsSumToOneForEveryKAndAtKEqualEIsTheSoftmaxMixture) {
  at::manual_seed(2);
  const int64_t n = 6, e = 4, d = 5;
  const at::Tensor logits = at::randn({n, e});
  for (int64_t k = 1; k <= e; ++k) {
    Routing r = RouteTopKSoftmax(logits, at::Tensor(), k);
    EXPECT_EQ(r.token.size(0), n * k);
    const at::Tensor sums = at::zeros({n}).index_add(0, r.token, r.weight);
    EXPECT_TRUE(at::allclose(sums, at::ones({n})));
  }
  Routing all = RouteTopKSoftmax(logits, at::Tensor(), e);
  Experts experts(e, d, 3);
  const at::Tensor x = at::randn({n, d});
  at::Tensor expected = at::zeros({n, d});
  const at::Tensor p = at::softmax(logits, -1);
  for (int64_t i = 0; i < e; ++i)
    expected += p.select(1, i).unsqueeze(1) * experts.ForwardOne(i, x);
  EXPECT_TRUE(testing::AllClose(IndexDispatchCombine(x, all.token, all.expert, all.weight, experts),
                                expected));
}

TEST(SmoeDropout, ExpertsSplitTheDenseFfnWithTheSameParameterCount) {
  auto method = MakeMethod("smoe_dropout", {});
  const int64_t d = 64, d_ff = 256, e = 4;
  const int64_t h = method->ExpertHidden(d_ff, e);
  EXPECT_EQ(h, 64);
  // E experts of width d_ff / E: same weights as the dense FFN; biases b1 total d_ff, and b2
  // is duplicated E times (d each instead of one d).
  const int64_t experts = e * (2 * d * h + h + d);
  const int64_t dense = 2 * d * d_ff + d_ff + d;
  EXPECT_EQ(experts - dense, (e - 1) * d);
}

TEST(SmoeDropout, RoutingIsDeterministicAndEvaluableAtAnyK) {
  at::manual_seed(3);
  SmoeDropoutRouter router(8, 4, SmoeDropoutOptions{});
  const at::Tensor x = at::randn({10, 8});
  RouteContext eval;
  Routing a = router.Route(x, at::Tensor(), eval), b = router.Route(x, at::Tensor(), eval);
  EXPECT_TRUE(at::equal(a.expert, b.expert));
  EXPECT_EQ(a.token.size(0), 10 * 4);  // default inference k = E
  eval.eval_k = 2;
  Routing two = router.Route(x, at::Tensor(), eval);
  EXPECT_EQ(two.token.size(0), 10 * 2);
  // The top-2 experts are the first two of the top-4 ones: only the count changed.
  EXPECT_TRUE(
      at::equal(std::get<0>(two.expert.sort()), std::get<0>(a.expert.slice(0, 0, 20).sort())));
}

}  // namespace
}  // namespace moebench
