// Index dispatch/combine equals the dense einsum oracle, outputs and gradients.
#include <gtest/gtest.h>

#include <memory>

#include "harness/comm/local_comm.h"
#include "harness/moe/dispatch.h"
#include "harness/moe/experts.h"
#include "harness/moe/moe_layer.h"
#include "methods/switch.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

using testing::AllClose;

struct RandomRouting {
  at::Tensor token, expert, slot, weight;
  int64_t capacity = 0;
};

// Each token gets 0, 1 or 2 distinct experts among 0..E-2 (expert E-1 stays empty), so the
// routing has dropped tokens, double assignments and an empty expert.
RandomRouting MakeRandomRouting(int64_t t, int64_t e, uint64_t seed) {
  at::manual_seed(seed);
  std::vector<int64_t> tok, exp, slot;
  std::vector<int64_t> used(e, 0);
  for (int64_t i = 0; i < t; ++i) {
    const int64_t k = at::randint(0, 3, {1}).item<int64_t>();
    const at::Tensor perm = at::randperm(e - 1);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t ex = perm[j].item<int64_t>();
      tok.push_back(i);
      exp.push_back(ex);
      slot.push_back(used[ex]++);
    }
  }
  RandomRouting r;
  r.token = at::tensor(tok, at::kLong);
  r.expert = at::tensor(exp, at::kLong);
  r.slot = at::tensor(slot, at::kLong);
  r.weight = at::rand({static_cast<int64_t>(tok.size())}).requires_grad_(true);
  for (int64_t u : used) r.capacity = std::max(r.capacity, u);
  return r;
}

TEST(Dispatch, IndexPathEqualsEinsumOracleWithGradients) {
  for (uint64_t seed : {1, 2, 3}) {
    const int64_t t = 13, d = 8, h = 16, e = 5;
    RandomRouting r = MakeRandomRouting(t, e, seed);
    Experts experts(e, d, h);
    at::Tensor x = at::randn({t, d}).requires_grad_(true);

    at::Tensor y_index = IndexDispatchCombine(x, r.token, r.expert, r.weight, experts);
    at::Tensor probe = at::randn({t, d});
    (y_index * probe).sum().backward();
    auto grads_index =
        std::vector<at::Tensor>{x.grad().clone(), r.weight.grad().clone(),
                                experts.w1.grad().clone(), experts.b2.grad().clone()};
    x.grad().zero_();
    r.weight.grad().zero_();
    for (auto& p : experts.parameters()) p.mutable_grad() = at::Tensor();

    at::Tensor y_oracle =
        EinsumDispatchCombine(x, r.token, r.expert, r.slot, r.weight, r.capacity, experts);
    (y_oracle * probe).sum().backward();
    EXPECT_TRUE(AllClose(y_index, y_oracle)) << "seed " << seed;
    EXPECT_TRUE(AllClose(grads_index[0], x.grad())) << "seed " << seed;
    EXPECT_TRUE(AllClose(grads_index[1], r.weight.grad())) << "seed " << seed;
    EXPECT_TRUE(AllClose(grads_index[2], experts.w1.grad())) << "seed " << seed;
    EXPECT_TRUE(AllClose(grads_index[3], experts.b2.grad())) << "seed " << seed;
    // The empty expert received no gradient at all on the index path: its slice is zero.
    EXPECT_EQ(grads_index[2][e - 1].abs().sum().item<float>(), 0.0f);
  }
}

TEST(Dispatch, TokensWithoutAssignmentGetZero) {
  Experts experts(2, 4, 8);
  at::Tensor x = at::randn({3, 4});
  at::Tensor y = IndexDispatchCombine(x, at::tensor({1}, at::kLong), at::tensor({0}, at::kLong),
                                      at::tensor({0.5f}), experts);
  EXPECT_EQ(y[0].abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(y[2].abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(AllClose(y[1], 0.5 * experts.ForwardOne(0, x[1].unsqueeze(0)).squeeze(0)));
}

// The whole layer with W virtual workers (exchange permutations included) equals the oracle
// replaying the layer's own assignments.
TEST(Dispatch, MoeLayerWithFourWorkersEqualsOracle) {
  at::manual_seed(7);
  const int64_t t = 37, d = 8, e = 8;
  LocalComm comm(Topology{4, 2});
  SwitchOptions opt;
  opt.capacity_factor = 1.0;
  opt.min_capacity = 0;
  MoeLayerOptions lo;
  lo.d_model = d;
  lo.d_hidden = 12;
  lo.num_experts = e;
  MoeLayer layer(lo, std::make_shared<SwitchRouter>(d, e, opt), &comm);
  at::Tensor x = at::randn({t, d}).requires_grad_(true);
  RouteContext ctx;
  ctx.training = true;
  at::Tensor y = layer->forward(x, at::Tensor(), ctx);
  const LayerAssignments& a = layer->last_assignments();
  EXPECT_LT(a.token.size(0), t);  // cf 1.0 over 8 experts drops something at this size
  at::Tensor probe = at::randn({t, d});
  (y * probe).sum().backward();
  // Compare expert-parameter gradients: x also gets gradient through the router's weights,
  // which the oracle replays as constants.
  Experts& ex = layer->experts();
  at::Tensor g_w1 = ex.w1.grad().clone(), g_b2 = ex.b2.grad().clone();
  ex.w1.mutable_grad().zero_();
  ex.b2.mutable_grad().zero_();
  at::Tensor y_oracle = EinsumDispatchCombine(x, a.token, a.expert, a.slot, a.weight.detach(),
                                              a.capacity, layer->experts());
  (y_oracle * probe).sum().backward();
  EXPECT_TRUE(AllClose(y, y_oracle));
  EXPECT_TRUE(AllClose(g_w1, ex.w1.grad()));
  EXPECT_TRUE(AllClose(g_b2, ex.b2.grad()));
}

}  // namespace
}  // namespace moebench
