// BASE layers (methods/base.h): the properties of METHODS-MODERN.md section 11 (BASE).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <tuple>

#include "methods/base.h"
#include "methods/routing_util.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

RouteContext Ctx(bool training) { return testing::SeededContext(training); }
using testing::ExpertOfToken;

double Objective(const at::Tensor& s, const std::vector<int64_t>& assign) {
  double sum = 0;
  for (size_t t = 0; t < assign.size(); ++t) sum += s[t][assign[t]].item<double>();
  return sum;
}

// The best objective over every assignment that gives expert e exactly quota[e] tokens.
double BruteForceOptimum(const at::Tensor& s, const std::vector<int64_t>& quota) {
  const int64_t n = s.size(0), e = s.size(1);
  std::vector<int64_t> assign(n), used(e, 0);
  double best = -std::numeric_limits<double>::infinity();
  std::function<void(int64_t, double)> go = [&](int64_t t, double sum) {
    if (t == n) {
      best = std::max(best, sum);
      return;
    }
    for (int64_t j = 0; j < e; ++j) {
      if (used[j] == quota[j]) continue;
      ++used[j];
      go(t + 1, sum + s[t][j].item<double>());
      --used[j];
    }
  };
  go(0, 0.0);
  return best;
}

std::vector<int64_t> Counts(const std::vector<int64_t>& assign, int64_t e) {
  std::vector<int64_t> c(e, 0);
  for (int64_t a : assign) ++c[a];
  return c;
}

TEST(BaseLayers, HandCaseTrainsBalancedAndInfersGreedy) {
  // Scores [[3,0],[2,0],[1,0],[0,0]], 2 experts of 2 tokens: the optimum takes the two largest
  // expert-0 scores, 3 + 2 + 0 + 0 = 5 (any other balanced split gives at most 4).
  const at::Tensor a = at::tensor({3.f, 0.f, 2.f, 0.f, 1.f, 0.f, 0.f, 0.f}).view({4, 2});
  const std::vector<int64_t> want = {0, 0, 1, 1};
  EXPECT_EQ(AuctionAssign(a, {2, 2}, BaseOptions{}), want);
  EXPECT_EQ(ExactAssign(a, {2, 2}), want);
  EXPECT_DOUBLE_EQ(BruteForceOptimum(a, {2, 2}), 5.0);
  EXPECT_EQ(ExpertOfToken(RouteBase(a, at::Tensor(), Ctx(true), BaseOptions{}), 4), want);
  BaseOptions exact;
  exact.assign = BaseAssign::kExact;
  EXPECT_EQ(ExpertOfToken(RouteBase(a, at::Tensor(), Ctx(true), exact), 4), want);
  // Inference: greedy top-1, every token to expert 0.
  EXPECT_EQ(ExpertOfToken(RouteBase(a, at::Tensor(), Ctx(false), BaseOptions{}), 4),
            (std::vector<int64_t>{0, 0, 0, 0}));
}

TEST(BaseLayers, EveryExpertGetsExactlyNOverETokensInTraining) {
  at::manual_seed(1);
  const at::Tensor a = at::randn({24, 4});
  const Routing r = RouteBase(a, at::Tensor(), Ctx(true), BaseOptions{});
  ASSERT_EQ(r.token.size(0), 24);  // one assignment per token
  EXPECT_TRUE(at::equal(std::get<0>(at::sort(r.token)), at::arange(24, at::kLong)));
  const at::Tensor c = at::bincount(r.expert, {}, 4);
  EXPECT_TRUE(at::equal(c, at::full({4}, 6, at::kLong)));
  EXPECT_EQ(r.dropped, 0);
  EXPECT_TRUE(r.losses.empty());  // no aux loss
}

TEST(BaseLayers, QuotasAreFloorOrCeilAndPadsAreNotAssigned) {
  EXPECT_EQ(BalancedQuotas(10, 4), (std::vector<int64_t>{3, 3, 2, 2}));
  EXPECT_EQ(BalancedQuotas(8, 4), (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(BalancedQuotas(3, 4), (std::vector<int64_t>{1, 1, 1, 0}));
  // 12 tokens, 2 of them pads: the 10 real ones are shared 3, 3, 2, 2.
  at::manual_seed(2);
  const at::Tensor a = at::randn({12, 4});
  at::Tensor pad = at::ones({12}, at::kBool);
  pad[3] = false;
  pad[9] = false;
  for (BaseAssign how : {BaseAssign::kAuction, BaseAssign::kExact}) {
    BaseOptions opt;
    opt.assign = how;
    const Routing r = RouteBase(a, pad, Ctx(true), opt);
    const std::vector<int64_t> e = ExpertOfToken(r, 12);
    EXPECT_EQ(e[3], -1);
    EXPECT_EQ(e[9], -1);
    EXPECT_EQ(r.token.size(0), 10);
    const at::Tensor c = at::bincount(r.expert, {}, 4);
    EXPECT_TRUE(at::equal(c, at::tensor({3, 3, 2, 2}, at::kLong)));
  }
}

TEST(BaseLayers, ExactAssignmentEqualsBruteForce) {
  for (int seed = 0; seed < 10; ++seed) {
    at::manual_seed(seed);
    const at::Tensor a8 = at::randn({8, 2});
    const std::vector<int64_t> x8 = ExactAssign(a8, {4, 4});
    EXPECT_EQ(Counts(x8, 2), (std::vector<int64_t>{4, 4}));
    EXPECT_NEAR(Objective(a8, x8), BruteForceOptimum(a8, {4, 4}), 1e-9) << seed;
    const at::Tensor a7 = at::randn({7, 3});  // quotas 3, 2, 2
    const std::vector<int64_t> x7 = ExactAssign(a7, BalancedQuotas(7, 3));
    EXPECT_EQ(Counts(x7, 3), (std::vector<int64_t>{3, 2, 2}));
    EXPECT_NEAR(Objective(a7, x7), BruteForceOptimum(a7, {3, 2, 2}), 1e-9) << seed;
  }
}

TEST(BaseLayers, AuctionIsBalancedAndWithinNEpsOfTheOptimum) {
  // 16 tokens, 4 experts: eps = (max - min) / 50; a finished auction is within n * eps.
  for (int seed = 0; seed < 20; ++seed) {
    at::manual_seed(100 + seed);
    const at::Tensor a = at::randn({16, 4});
    AssignStats st;
    const std::vector<int64_t> x = AuctionAssign(a, {4, 4, 4, 4}, BaseOptions{}, &st);
    EXPECT_EQ(Counts(x, 4), (std::vector<int64_t>{4, 4, 4, 4}));
    EXPECT_FALSE(st.fallback) << seed;
    const double eps = (a.max().item<double>() - a.min().item<double>()) / 50;
    const double best = Objective(a, ExactAssign(a, {4, 4, 4, 4}));
    EXPECT_GE(Objective(a, x), best - 16 * eps - 1e-9) << seed;
    EXPECT_LE(Objective(a, x), best + 1e-9) << seed;
  }
}

TEST(BaseLayers, NonFiniteScoresCountAsTheSmallestFiniteOne) {
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor a = at::tensor({-inf, 1.f, 2.f, -inf}).view({2, 2});
  EXPECT_EQ(AuctionAssign(a, {1, 1}, BaseOptions{}), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(ExactAssign(a, {1, 1}), (std::vector<int64_t>{1, 0}));
}

TEST(BaseLayers, WeightIsTheSigmoidOfTheAffinityAndTheOnlyGradientPath) {
  // Affinity ln 3 -> sigmoid = 3/4.
  const at::Tensor a = at::tensor({std::log(3.0f), 0.0f}).view({1, 2}).requires_grad_(true);
  const Routing r = RouteBase(a, at::Tensor(), Ctx(false), BaseOptions{});
  EXPECT_EQ(r.expert.item<int64_t>(), 0);
  EXPECT_NEAR(r.weight.item<float>(), 0.75f, 1e-6);
  r.weight.sum().backward();
  // d sigmoid / da = 3/4 * 1/4 at the chosen expert; nothing reaches the other affinity.
  EXPECT_NEAR(a.grad()[0][0].item<float>(), 0.1875f, 1e-6);
  EXPECT_EQ(a.grad()[0][1].item<float>(), 0.0f);
}

TEST(BaseLayers, RouterHasOrthogonalCentroidsWithGain) {
  BaseRouter router(8, 4, BaseOptions{});
  ASSERT_EQ(router.parameters().size(), 1u);
  const at::Tensor c = router.parameters()[0];
  EXPECT_EQ(c.sizes(), (at::IntArrayRef{4, 8}));
  // Orthogonal rows scaled by 0.1: C C^T = 0.01 I.
  EXPECT_TRUE(at::allclose(c.matmul(c.t()), 0.01 * at::eye(4), 1e-5, 1e-6));
}

TEST(BaseLayers, RouteLogitsRefusesKAboveOneInTraining) {
  const std::unique_ptr<Method> m = MakeMethod("base", {});
  LogitsRequest req;
  req.ctx.training = true;
  req.k = 2;
  EXPECT_THROW(m->RouteLogits(at::zeros({4, 2}), at::Tensor(), req), std::invalid_argument);
  EXPECT_THROW(MakeMethod("base", {{"base_assign", "hungarian"}}), std::invalid_argument);
}

}  // namespace
}  // namespace moebench
