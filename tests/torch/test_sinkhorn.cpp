// Sinkhorn routing (methods/sinkhorn.h): the properties of METHODS-MODERN.md section 11
// (Sinkhorn).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <stdexcept>

#include "methods/routing_util.h"
#include "methods/sinkhorn.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

RouteContext Ctx(bool training) { return testing::SeededContext(training); }
using testing::ExpertOfToken;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Logits [[2,0],[1,0],[0,0],[-1,0]]: the row differences 2, 1, 0, -1 are symmetric about 1/2,
// so at the fixed point the column scaling ratio d1[0]/d1[1] is e^{-1/2} and
// P[t] = (sigmoid(h_t0 - h_t1 - 1/2), sigmoid(-(h_t0 - h_t1 - 1/2))) / 4: column 0 then sums to
// (s(1.5) + s(0.5) + s(-0.5) + s(-1.5)) / 4 = 1/2.
const at::Tensor HandLogits() {
  return at::tensor({2.f, 0.f, 1.f, 0.f, 0.f, 0.f, -1.f, 0.f}).view({4, 2});
}

TEST(Sinkhorn, ZeroLogitsGiveTheUniformPlan) {
  const SinkhornResult r = SinkhornPlan(at::zeros({2, 2}), SinkhornOptions{});
  EXPECT_TRUE(at::allclose(r.plan, at::full({2, 2}, 0.25f), 0, 1e-7));
  EXPECT_TRUE(r.converged);
}

TEST(Sinkhorn, HandCasePlanMatchesTheClosedFormAndSumsToTheMarginals) {
  const double diff[4] = {2, 1, 0, -1};
  // Megatron's tolerance (1e-4 on the column scaling): within 1e-5 of the fixed point.
  const SinkhornResult r = SinkhornPlan(HandLogits(), SinkhornOptions{});
  ASSERT_TRUE(r.converged);
  for (int t = 0; t < 4; ++t) {
    EXPECT_NEAR(r.plan[t][0].item<double>(), Sigmoid(diff[t] - 0.5) / 4, 1e-5) << t;
    EXPECT_NEAR(r.plan[t][1].item<double>(), Sigmoid(-(diff[t] - 0.5)) / 4, 1e-5) << t;
  }
  EXPECT_NEAR(r.plan[0][0].item<double>(), 0.2044, 5e-5);  // the spec's values
  EXPECT_NEAR(r.plan[1][1].item<double>(), 0.0944, 5e-5);
  // Columns sum to 1/E after every column update; rows to 1/n within the tolerance.
  const at::Tensor cols = r.plan.sum(0), rows = r.plan.sum(1);
  for (int e = 0; e < 2; ++e) EXPECT_NEAR(cols[e].item<double>(), 0.5, 1e-6);
  for (int t = 0; t < 4; ++t) EXPECT_NEAR(rows[t].item<double>(), 0.25, 1e-4);
}

TEST(Sinkhorn, RowAndColumnSumsOnRandomLogits) {
  at::manual_seed(4);
  SinkhornOptions opt;
  opt.tol = 1e-7;
  const SinkhornResult r = SinkhornPlan(at::randn({32, 4}) * 2, opt);
  ASSERT_TRUE(r.converged);
  EXPECT_TRUE(at::allclose(r.plan.sum(0), at::full({4}, 0.25f), 0, 1e-6));
  EXPECT_TRUE(at::allclose(r.plan.sum(1), at::full({32}, 1.0f / 32), 0, 1e-6));
}

TEST(Sinkhorn, PlanIgnoresRowAndColumnConstantsAndTheRowShift) {
  at::manual_seed(5);
  const at::Tensor h = at::randn({6, 3});
  SinkhornOptions tight;
  tight.tol = 1e-8;
  const at::Tensor p = SinkhornPlan(h, tight).plan;
  const at::Tensor shifted = h + at::tensor({1.f, -2.f, 0.5f, 3.f, 0.f, -1.f}).view({6, 1}) +
                             at::tensor({0.7f, -0.3f, 2.f}).view({1, 3});
  EXPECT_TRUE(at::allclose(SinkhornPlan(shifted, tight).plan, p, 0, 1e-5));
  // Without the row-max shift (Megatron's plain exp): the same plan.
  SinkhornOptions plain = tight;
  plain.row_shift = false;
  EXPECT_TRUE(at::allclose(SinkhornPlan(h, plain).plan, p, 0, 1e-6));
  // At Megatron's tolerance too: the shift leaves every column-scaling iterate unchanged.
  SinkhornOptions megatron;
  megatron.row_shift = false;
  const SinkhornResult a = SinkhornPlan(h, SinkhornOptions{}), b = SinkhornPlan(h, megatron);
  EXPECT_EQ(a.iterations, b.iterations);
  EXPECT_TRUE(at::allclose(a.plan, b.plan, 0, 1e-6));
  // Logits far beyond exp's float range stay finite with the shift.
  EXPECT_TRUE(at::isfinite(SinkhornPlan(h * 100 + 500, SinkhornOptions{}).plan).all().item<bool>());
}

TEST(Sinkhorn, TrainingSelectsFromThePlanInferenceFromTheLogits) {
  const at::Tensor h = HandLogits();
  const Routing train = RouteSinkhorn(h, at::Tensor(), Ctx(true), SinkhornOptions{});
  EXPECT_EQ(ExpertOfToken(train, 4), (std::vector<int64_t>{0, 0, 1, 1}));
  // Weights: sigmoid of the original logit of the chosen expert, not of the plan.
  const double want[4] = {Sigmoid(2), Sigmoid(1), Sigmoid(0), Sigmoid(0)};
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_NEAR(train.weight[i].item<double>(), want[train.token[i].item<int64_t>()], 1e-6);
  }
  EXPECT_EQ(train.stats.at("sinkhorn_converged"), 1.0);
  const Routing eval = RouteSinkhorn(h, at::Tensor(), Ctx(false), SinkhornOptions{});
  // Greedy: token 2's tie (0, 0) goes to the first expert, token 3's (-1, 0) to expert 1.
  EXPECT_EQ(ExpertOfToken(eval, 4), (std::vector<int64_t>{0, 0, 0, 1}));
  EXPECT_TRUE(eval.stats.empty());  // inference never runs Sinkhorn
}

TEST(Sinkhorn, TopKWeightsAreFullSoftmaxProbabilitiesNotRenormalised) {
  // Logits ln(2, 5, 3): softmax (0.2, 0.5, 0.3); top-2 = experts 1, 2 with 0.5 and 0.3.
  const at::Tensor h = at::log(at::tensor({2.f, 5.f, 3.f})).view({1, 3});
  SinkhornOptions opt;
  opt.k = 2;
  const Routing r = RouteSinkhorn(h, at::Tensor(), Ctx(false), opt);
  ASSERT_EQ(r.token.size(0), 2);
  EXPECT_EQ(r.expert[0].item<int64_t>(), 1);
  EXPECT_EQ(r.expert[1].item<int64_t>(), 2);
  EXPECT_NEAR(r.weight[0].item<float>(), 0.5f, 1e-6);
  EXPECT_NEAR(r.weight[1].item<float>(), 0.3f, 1e-6);
}

TEST(Sinkhorn, GradientReachesTheLogitsOnlyThroughTheWeights) {
  const at::Tensor h = HandLogits().clone().requires_grad_(true);
  const Routing r = RouteSinkhorn(h, at::Tensor(), Ctx(true), SinkhornOptions{});
  r.weight.sum().backward();
  // d sigmoid(x)/dx = s(1 - s) at the chosen entries (experts 0, 0, 1, 1); zero elsewhere.
  const double s2 = Sigmoid(2), s1 = Sigmoid(1);
  EXPECT_NEAR(h.grad()[0][0].item<double>(), s2 * (1 - s2), 1e-6);
  EXPECT_NEAR(h.grad()[1][0].item<double>(), s1 * (1 - s1), 1e-6);
  EXPECT_NEAR(h.grad()[2][1].item<double>(), 0.25, 1e-6);
  EXPECT_EQ(h.grad()[0][1].item<double>(), 0.0);
  EXPECT_EQ(h.grad()[3][0].item<double>(), 0.0);
}

TEST(Sinkhorn, PadsTakeNoPartInThePlan) {
  // The hand case with two pad rows that would pull expert 0: the real tokens route as before.
  const at::Tensor h = at::cat({HandLogits(), at::full({2, 2}, 0.f)}, 0);
  h[4][0] = 50;
  h[5][0] = 50;
  at::Tensor pad = at::ones({6}, at::kBool);
  pad[4] = false;
  pad[5] = false;
  const Routing r = RouteSinkhorn(h, pad, Ctx(true), SinkhornOptions{});
  EXPECT_EQ(ExpertOfToken(r, 6), (std::vector<int64_t>{0, 0, 1, 1, -1, -1}));
}

TEST(Sinkhorn, NoAuxLossAndAnOptionalZLoss) {
  const Routing r = RouteSinkhorn(HandLogits(), at::Tensor(), Ctx(true), SinkhornOptions{});
  EXPECT_TRUE(r.losses.empty());
  SinkhornOptions z;
  z.z_coef = 0.001;
  // z-loss = mean over tokens of logsumexp^2 = (ln 2)^2 for logits (0, 0).
  const Routing rz = RouteSinkhorn(at::zeros({3, 2}), at::Tensor(), Ctx(true), z);
  ASSERT_EQ(rz.losses.size(), 1u);
  EXPECT_EQ(rz.losses[0].name, "z");
  EXPECT_NEAR(rz.losses[0].value.item<double>(), std::log(2.0) * std::log(2.0), 1e-6);
  EXPECT_THROW(MakeMethod("sinkhorn", {{"sinkhorn_tol", "0"}}), std::invalid_argument);
  EXPECT_THROW(MakeMethod("sinkhorn", {{"aux_coef", "0.01"}}), std::invalid_argument);
}

}  // namespace
}  // namespace moebench
