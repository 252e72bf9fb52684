// Gating Dropout and Gate-Expert-Drop: docs/METHODS.md section 9 properties.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/gating_dropout.h"
#include "methods/method.h"
#include "methods/switch.h"
#include "methods/uniform.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

MoeLayerOptions Layer(int64_t e) {
  MoeLayerOptions lo;
  lo.d_model = 8;
  lo.d_hidden = 16;
  lo.num_experts = e;
  return lo;
}

MoeLayer MakeLayer(const std::string& method, std::map<std::string, std::string> knobs, Comm* comm,
                   uint64_t init_seed) {
  at::manual_seed(init_seed);
  auto m = MakeMethod(method, knobs);
  return MoeLayer(Layer(4), m->MakeRouter({0, false, 8, 32, 4}), comm);
}

RouteContext Train(int64_t step) {
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 1;
  ctx.step = step;
  return ctx;
}

TEST(GatingDropout, WithPZeroItEqualsItsBaseRouterBitForBit) {
  LocalComm comm(Topology{2, 1});
  MoeLayer base = MakeLayer("switch", {{"capacity_factor", "1.0"}}, &comm, 42);
  MoeLayer gd = MakeLayer("gating_dropout", {{"p", "0"}}, &comm, 42);
  at::manual_seed(3);
  const at::Tensor x = at::randn({24, 8});
  at::Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
  at::Tensor ya = base->forward(xa, at::Tensor(), Train(1));
  at::Tensor yb = gd->forward(xb, at::Tensor(), Train(1));
  EXPECT_TRUE(at::equal(ya, yb));
  (ya * ya).sum().backward();
  (yb * yb).sum().backward();
  EXPECT_TRUE(at::equal(xa.grad(), xb.grad()));
  EXPECT_TRUE(at::equal(base->experts().w1.grad(), gd->experts().w1.grad()));
}

TEST(GatingDropout, WithPOneNoTokenCrossesWorkersAndNoAllToAllRuns) {
  LocalComm comm(Topology{4, 2});
  MoeLayer gd = MakeLayer("gating_dropout", {{"p", "1"}}, &comm, 1);
  at::Tensor x = at::randn({40, 8}).requires_grad_(true);
  gd->forward(x, at::Tensor(), Train(1)).sum().backward();
  CommCounters total;
  for (const auto& [key, c] : comm.meter().Drain()) total.Add(c);
  EXPECT_EQ(total.calls, 0);
  EXPECT_EQ(total.logical[1] + total.logical[2], 0);
  EXPECT_EQ(total.wire[1] + total.wire[2], 0);
  EXPECT_GT(total.logical[0], 0);
  // Each token went to an expert on its own worker (E_loc = 1: expert index = worker).
  const LayerAssignments& a = gd->last_assignments();
  EXPECT_TRUE(at::equal(a.expert, at::div(a.token, 10, "floor")));
  EXPECT_EQ(gd->last_stats().rows_cross_worker, 0);
}

TEST(GatingDropout, NeverDropsAtInference) {
  LocalComm comm(Topology{2, 1});
  MoeLayer gd = MakeLayer("gating_dropout", {{"p", "1"}}, &comm, 1);
  RouteContext eval;
  gd->forward(at::randn({16, 8}), at::Tensor(), eval);
  EXPECT_FALSE(gd->last_stats().exchange_skipped);
  EXPECT_GT(comm.meter().total().calls, 0);
}

TEST(GatingDropout, DropFrequencyIsPAndTheCoinIsSharedByAllWorkers) {
  const double p = 0.3;
  const int steps = 2000;
  int drops = 0;
  for (int s = 0; s < steps; ++s) {
    RouteContext ctx = Train(s);
    const bool coin = GatingDropoutCoin(ctx, p);
    drops += coin;
    for (int g = 1; g < 4; ++g) {
      ctx.group = g;
      ASSERT_EQ(GatingDropoutCoin(ctx, p), coin) << "step " << s << " worker " << g;
    }
  }
  EXPECT_NEAR(drops, steps * p, 4 * std::sqrt(steps * p * (1 - p)));
  // Defaults: p = 0.3, or 0.2 with gate_expert_drop.
  const auto& info = FindMethod("gating_dropout");
  EXPECT_DOUBLE_EQ(GatingDropoutOptionsFromKnobs(Knobs("gating_dropout", info.knobs, {})).p, 0.3);
  EXPECT_DOUBLE_EQ(GatingDropoutOptionsFromKnobs(
                       Knobs("gating_dropout", info.knobs, {{"gate_expert_drop", "true"}}))
                       .p,
                   0.2);
}

TEST(GatingDropout, GateExpertDropMakesTheLayerAnIdentityWithoutExpertFlops) {
  LocalComm comm(Topology{2, 1});
  MoeLayer gd = MakeLayer("gating_dropout", {{"p", "1"}, {"gate_expert_drop", "true"}}, &comm, 1);
  const double flops = gd->expert_flops();
  at::Tensor y = gd->forward(at::randn({16, 8}), at::Tensor(), Train(1));
  EXPECT_EQ(y.abs().sum().item<float>(), 0.0f);  // the residual carries the tokens
  EXPECT_EQ(gd->expert_flops(), flops);
  EXPECT_EQ(gd->aux_loss().item<float>(), 0.0f);
}

TEST(Uniform, EveryExpertGetsTheSameNumberOfTokens) {
  Routing r = RouteUniform(12, at::Tensor(), 4, 1);
  EXPECT_TRUE(at::equal(at::bincount(r.expert, {}, 4), at::full({4}, 3, at::kLong)));
  Routing two = RouteUniform(12, at::Tensor(), 4, 2);
  EXPECT_TRUE(at::equal(at::bincount(two.expert, {}, 4), at::full({4}, 6, at::kLong)));
  EXPECT_EQ(two.dropped, 0);
}

}  // namespace
}  // namespace moebench
