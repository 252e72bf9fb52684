// THOR: docs/METHODS.md section 9 properties.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "methods/thor.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

ThorOptions Batch() {
  ThorOptions o;
  o.train_granularity = ThorGranularity::kBatch;
  return o;
}

TEST(Thor, HasNoRouterParametersAndUsesOneExpertPerBatchInTraining) {
  ThorRouter router(4, Batch());
  EXPECT_TRUE(router.parameters().empty());
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 1;
  std::set<int64_t> pass0, pass1;
  int differ = 0;
  for (int step = 0; step < 50; ++step) {
    ctx.step = step;
    ctx.pass = 0;
    Routing a = router.Route(at::randn({16, 8}), at::Tensor(), ctx);
    ctx.pass = 1;
    Routing b = router.Route(at::randn({16, 8}), at::Tensor(), ctx);
    EXPECT_EQ(a.token.size(0), 16);
    EXPECT_EQ(std::get<0>(at::_unique(a.expert)).numel(), 1);  // one expert for the batch
    EXPECT_TRUE(at::equal(a.weight, at::ones({16})));
    differ += a.expert[0].item<int64_t>() != b.expert[0].item<int64_t>();
  }
  // Independent draws: with E = 4 the passes differ 3/4 of the time (not always, not never).
  EXPECT_GT(differ, 20);
  EXPECT_LT(differ, 50);
}

// The authors' code draws one expert per layer per forward call for the whole mini-batch. The
// default must do so with several expert-parallel workers too (every paper manifest has
// workers > 1): every worker's tokens go to the same expert.
TEST(Thor, DefaultDrawsOneExpertForTheWholeBatchWithSeveralWorkers) {
  const Knobs knobs("thor", ThorKnobSpecs(), {});
  ThorRouter router(4, ThorOptionsFromKnobs(knobs));
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 3;
  ctx.topology.workers = 4;
  ctx.topology.workers_per_node = 2;
  for (int step = 0; step < 20; ++step) {
    ctx.step = step;
    std::set<int64_t> experts;
    for (int g = 0; g < 4; ++g) {
      ctx.group = g;
      Routing r = router.Route(at::randn({8, 8}), at::Tensor(), ctx);
      for (int64_t i = 0; i < r.expert.numel(); ++i) experts.insert(r.expert[i].item<int64_t>());
    }
    EXPECT_EQ(experts.size(), 1u) << "step " << step;
  }
}

TEST(Thor, PerTokenDrawsAreOptInAndAutoIsRefused) {
  const Knobs token("thor", ThorKnobSpecs(), {{"train_granularity", "token"}});
  ThorRouter router(4, ThorOptionsFromKnobs(token));
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 3;
  Routing r = router.Route(at::randn({64, 8}), at::Tensor(), ctx);
  // 64 uniform draws over 4 experts all equal with probability 4 * 4^-64: never.
  EXPECT_GT(std::get<0>(at::_unique(r.expert)).numel(), 1);
  const Knobs autok("thor", ThorKnobSpecs(), {{"train_granularity", "auto"}});
  EXPECT_THROW(ThorOptionsFromKnobs(autok), std::invalid_argument);
}

TEST(Thor, SymmetricKlIsZeroForEqualInputsNonNegativeAndSymmetric) {
  at::manual_seed(2);
  const at::Tensor p = at::randn({2, 3, 7}), q = at::randn({2, 3, 7});
  const at::Tensor mask = at::ones({2, 3}, at::kBool);
  EXPECT_NEAR(SymmetricKl(p, p, mask).item<float>(), 0.0f, 1e-6);
  EXPECT_GT(SymmetricKl(p, q, mask).item<float>(), 0.0f);
  EXPECT_NEAR(SymmetricKl(p, q, mask).item<float>(), SymmetricKl(q, p, mask).item<float>(), 1e-5);
  // Hand computation for one position: p = (1/2, 1/2), q = (1/4, 3/4):
  // 0.5 * [(1/4) ln 2 + (-1/4) ln(2/3)] = 0.125 * ln 3.
  const at::Tensor lp = at::log(at::tensor({0.5f, 0.5f})).view({1, 1, 2});
  const at::Tensor lq = at::log(at::tensor({0.25f, 0.75f})).view({1, 1, 2});
  EXPECT_NEAR(SymmetricKl(lp, lq, at::ones({1, 1}, at::kBool)).item<float>(),
              0.125f * std::log(3.0f), 1e-6);
  // Masked positions do not count.
  EXPECT_NEAR(SymmetricKl(lp, lq, at::zeros({1, 1}, at::kBool)).item<float>(), 0.0f, 1e-9);
}

TEST(Thor, ObjectiveIsBothCrossEntropiesPlusAlphaTimesSkl) {
  Knobs knobs("thor", ThorKnobSpecs(), {{"alpha", "2.0"}});
  ThorMethod method(knobs);
  const at::Tensor l1 = at::log(at::tensor({0.5f, 0.5f})).view({1, 1, 2});
  const at::Tensor l2 = at::log(at::tensor({0.25f, 0.75f})).view({1, 1, 2});
  int calls = 0;
  ObjectiveOutput out = method.Objective([&](int pass) {
    ++calls;
    ForwardOutput f;
    f.logits = pass == 0 ? l1 : l2;
    f.ce_sum = at::tensor(pass == 0 ? 3.0f : 5.0f);
    f.aux = at::zeros({});
    f.target_mask = at::ones({1, 1}, at::kBool);
    f.ntokens = 4;
    return f;
  });
  EXPECT_EQ(calls, 2);
  EXPECT_NEAR(out.loss.item<float>(), (3.0f + 5.0f + 2.0f * 0.125f * std::log(3.0f)) / 4.0f, 1e-6);
  // The logged metric: the symmetric KL per target token, left on the device.
  ASSERT_EQ(out.metrics.count("thor_skl"), 1u);
  EXPECT_NEAR(out.metrics.at("thor_skl").item<double>(), 0.125 * std::log(3.0) / 4.0, 1e-6);
}

TEST(Thor, InferenceUsesOneExpertPerSentenceStableThroughDecoding) {
  ThorRouter router(4, ThorOptions{});
  RouteContext ctx;  // inference
  ctx.seed = 7;
  ctx.layer = 1;
  ctx.total_tokens = 6 * 5;
  ctx.tokens_per_sentence = 5;  // 6 sentences of 5 tokens
  Routing r = router.Route(at::randn({30, 8}), at::Tensor(), ctx);
  ASSERT_EQ(r.token.size(0), 30);
  std::vector<int64_t> sentence_expert(6);
  for (int s = 0; s < 6; ++s) {
    const at::Tensor e = r.expert.slice(0, 5 * s, 5 * s + 5);
    EXPECT_EQ(std::get<0>(at::_unique(e)).numel(), 1) << "sentence " << s;
    sentence_expert[s] = e[0].item<int64_t>();
  }
  // Incremental decoding: one token per sentence per step, same experts at every position.
  ctx.total_tokens = 6;
  ctx.tokens_per_sentence = 1;
  for (int pos = 0; pos < 3; ++pos) {
    ctx.position = pos;
    Routing step = router.Route(at::randn({6, 8}), at::Tensor(), ctx);
    for (int s = 0; s < 6; ++s) EXPECT_EQ(step.expert[s].item<int64_t>(), sentence_expert[s]);
  }
}

TEST(Thor, ExpertUseIsUniformOverManySteps) {
  ThorRouter router(4, Batch());
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 11;
  std::vector<double> count(4, 0);
  const int steps = 800;
  for (int step = 0; step < steps; ++step) {
    ctx.step = step;
    count[router.Route(at::zeros({2, 1}), at::Tensor(), ctx).expert[0].item<int64_t>()] += 1;
  }
  double chi2 = 0;
  for (double c : count) chi2 += (c - steps / 4.0) * (c - steps / 4.0) / (steps / 4.0);
  EXPECT_LT(chi2, 16.27);  // chi-squared, 3 degrees of freedom, p = 0.001
}

}  // namespace
}  // namespace moebench
