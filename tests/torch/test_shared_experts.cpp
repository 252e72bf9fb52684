// Shared and fine-grained experts (METHODS-MODERN.md section 2; Note [Shared and fine-grained
// experts] in harness/model/expert_layout.h): the layer's output is the shared FFN plus the
// routed combine, by hand; the layout, parameter counts and FLOPs by hand; the methods and
// layouts refused, naming the key.
#include <gtest/gtest.h>

#include "harness/comm/local_comm.h"
#include "harness/model/compute_model.h"
#include "harness/model/expert_layout.h"
#include "harness/model/param_count.h"
#include "harness/model/transformer.h"
#include "harness/spec/run_spec_check.h"
#include "methods/method.h"
#include "tests/torch/hand_model.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

// d 2, two routed experts of width 2 and a shared FFN of width 2, weights set by hand:
// expert e: relu((e + 1) x); shared: 2 relu(x) + 1.
MoeLayer HandLayer(Comm* comm, std::vector<Routing> routings, int64_t shared_hidden = 2) {
  MoeLayerOptions lo;
  lo.d_model = 2;
  lo.d_hidden = 2;
  lo.num_experts = 2;
  lo.shared_hidden = shared_hidden;
  MoeLayer layer(lo, std::make_shared<testing::FixedRouter>(std::move(routings)), comm);
  at::NoGradGuard no_grad;
  Experts& ex = layer->experts();
  const at::Tensor eye = at::eye(2);
  ex.w1.copy_(at::stack({eye, 2 * eye}));
  ex.b1.zero_();
  ex.w2.copy_(at::stack({eye, eye}));
  ex.b2.zero_();
  Experts* sh = layer->shared();
  if (sh == nullptr) return layer;
  sh->w1.copy_(eye.unsqueeze(0));
  sh->b1.zero_();
  sh->w2.copy_((2 * eye).unsqueeze(0));
  sh->b2.fill_(1);
  return layer;
}

// Token 0 -> expert 0 (weight 0.5), token 1 -> expert 1 (weight 1), token 2 dropped:
//   t0: 0.5 relu([1, 2])    + (2 relu([1, 2]) + 1)  = [0.5, 1] + [3, 5] = [3.5, 6]
//   t1: 1.0 relu(2 [3, -1]) + (2 relu([3, -1]) + 1) = [6, 0]   + [7, 1] = [13, 1]
//   t2: nothing routed      + (2 relu([-2, 4]) + 1) = [1, 9]
TEST(SharedExperts, OutputIsSharedPlusRoutedByHand) {
  LocalComm comm(Topology{1, 1});
  Routing r = testing::MakeRouting({0, 1}, 2);
  r.weight = at::tensor({0.5f, 1.0f});
  MoeLayer layer = HandLayer(&comm, {r});
  const at::Tensor x = at::tensor({1.f, 2.f, 3.f, -1.f, -2.f, 4.f}).view({3, 2});
  const at::Tensor y = layer->forward(x, at::Tensor(), RouteContext{});
  EXPECT_TRUE(at::equal(y, at::tensor({3.5f, 6.f, 13.f, 1.f, 1.f, 9.f}).view({3, 2}))) << y;
  // The shared FFN is not an expert: it is not in the experts' parameters, has weight 1 and
  // gets a gradient from every token.
  EXPECT_EQ(layer->experts().num_experts(), 2);
  y.sum().backward();
  EXPECT_TRUE(layer->shared()->b2.grad().defined());
  EXPECT_TRUE(at::equal(layer->shared()->b2.grad(), at::full({1, 2}, 3.0f)));
}

// Two workers, each token to the other worker's expert: the shared experts add to the output
// and send no bytes (every counter of every phase as without them).
TEST(SharedExperts, SharedExpertsRunLocallyAndSendNoBytes) {
  auto run = [](int64_t shared_hidden, at::Tensor* y) {
    LocalComm comm(Topology{2, 1});
    Routing g0 = testing::MakeRouting({1}, 1), g1 = testing::MakeRouting({0}, 1);
    MoeLayer layer = HandLayer(&comm, {g0, g1}, shared_hidden);
    const at::Tensor x = at::tensor({1.f, 2.f, 3.f, -1.f}).view({2, 2});
    *y = layer->forward(x, at::Tensor(), RouteContext{});
    std::map<std::pair<int, std::string>, std::vector<int64_t>> bytes;
    for (const auto& [key, c] : comm.meter().Drain()) {
      std::vector<int64_t> v = {c.calls};
      v.insert(v.end(), c.logical.begin(), c.logical.end());
      v.insert(v.end(), c.wire.begin(), c.wire.end());
      bytes[key] = v;
    }
    return bytes;
  };
  at::Tensor with, without;
  const auto a = run(2, &with), b = run(0, &without);
  // t0 (worker 0) -> expert 1: relu(2 [1, 2]) + [3, 5] = [5, 9]; t1 -> expert 0: [3, 0] + [7, 1].
  EXPECT_TRUE(at::equal(with, at::tensor({5.f, 9.f, 10.f, 1.f}).view({2, 2}))) << with;
  EXPECT_TRUE(at::equal(without, at::tensor({2.f, 4.f, 3.f, 0.f}).view({2, 2}))) << without;
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
}

ModelConfig Tiny(int64_t shared, int64_t granularity) {
  ModelConfig c = SizePreset("tiny");
  c.vocab = 1000;
  c.shared_experts = shared;
  c.expert_granularity = granularity;
  return c;
}

// tiny: d 64, d_ff 256, E 4, two MoE layers. Switch with shared_experts 1, granularity 2:
// 8 routed experts of width 128 (each 2 * 64 * 128 + 128 + 64 = 16,576 parameters), top-1 of
// them, a shared FFN of width 128 (16,576), a router of 64 * 8 = 512. Per MoE layer: total
// 512 + 8 * 16,576 + 16,576 = 149,696 against plain switch's 256 + 4 * 33,088 = 132,608
// (+17,088); active 512 + 16,576 + 16,576 = 33,664 against 256 + 33,088 = 33,344 (+320: the
// wider router and one more output bias). Plain tiny switch: 496,768 total, 298,240 active.
TEST(SharedExperts, ActiveParametersOfTinyByHand) {
  std::unique_ptr<Method> sw = MakeMethod("switch", {});
  const ExpertLayout l = MoeExpertLayout(Tiny(1, 2), *sw);
  EXPECT_EQ(l.routed, 8);
  EXPECT_EQ(l.top_k, 1);
  EXPECT_EQ(l.hidden, 128);
  EXPECT_EQ(l.shared_hidden, 128);
  EXPECT_EQ(l.active_hidden(), 256);  // = d_ff: the plain switch layer's expert FLOPs
  const ParamCounts plain = CountModelParams(Tiny(0, 1), "switch");
  EXPECT_EQ(plain.total, 496768);
  EXPECT_EQ(plain.active, 298240);
  const ParamCounts fine = CountModelParams(Tiny(1, 2), "switch");
  EXPECT_EQ(fine.total, 496768 + 2 * 17088);  // 530,944
  EXPECT_EQ(fine.active, 298240 + 2 * 320);   // 298,880
  // The built model counts the same.
  LocalComm comm(Topology{1, 1});
  Transformer model(Tiny(1, 2), sw.get(), &comm);
  const ParamCounts built = model->CountParams(l.top_k);
  EXPECT_EQ(built.total, fine.total);
  EXPECT_EQ(built.active, fine.active);
  // GShard (k 2) with granularity 2 and 2 shared: 8 routed of width 128, top-2, a shared FFN
  // of width 256: active width 2 * 128 + 256 = 512 = 2 * d_ff, top-2's.
  std::unique_ptr<Method> gs = MakeMethod("gshard", {});
  const ExpertLayout g = MoeExpertLayout(Tiny(2, 2), *gs);
  EXPECT_EQ(g.top_k, 2);
  EXPECT_EQ(g.shared_hidden, 256);
  EXPECT_EQ(g.active_hidden(), 512);
}

// Hand() of test_compute_model.cpp (d 4, f 8, V 10, 2 + 2 layers, E 2; B 1, S 3, T 2) with
// switch, granularity 2, one shared expert: the plain model's 3408 forward FLOPs, plus a router
// twice as wide (2 * tokens * 4 * 2 more: encoder 48, decoder 32) and the shared FFN of width 4
// in each MoE block (2 * 2 * tokens * 4 * 4: encoder 192, decoder 128).
TEST(SharedExperts, ForwardFlopsCountTheWiderRouterAndTheSharedFfn) {
  ModelConfig c = testing::HandModel();
  c.shared_experts = 1;
  c.expert_granularity = 2;
  const ForwardFlops f = ModelForwardFlops(c, 0, 4, 1, 3, 2);
  EXPECT_DOUBLE_EQ(f.router, 96 + 64);
  EXPECT_DOUBLE_EQ(f.ffn, 384 + 256 + 192 + 128);
  EXPECT_DOUBLE_EQ(f.total(), 3408 + 80 + 320);
  LocalComm comm(Topology{1, 1});
  std::unique_ptr<Method> sw = MakeMethod("switch", {});
  Transformer model(c, sw.get(), &comm);
  model->eval();
  const at::Tensor src = at::randint(1, 10, {1, 3}, at::kLong);
  const at::Tensor tgt = at::randint(1, 10, {1, 2}, at::kLong);
  model->forward(src, tgt, RouteContext{});
  EXPECT_DOUBLE_EQ(model->nonexpert_forward_flops(), 3808);
  // The routed experts are width 4: 4 FLOPs-per-multiply-add row of 2 * 2 * 4 * 4 = 64, half
  // the plain width-8 expert's 128; with the shared FFN's 64 a token costs what it did.
  EXPECT_EQ(model->MoeLayers()[0]->options().d_hidden, 4);
  EXPECT_EQ(model->MoeLayers()[0]->options().num_experts, 4);
}

// The layouts and methods refused, naming the key.
TEST(SharedExperts, RefusedLayoutsNameTheirKey) {
  auto problem = [](const std::string& method, int64_t shared, int64_t m, std::string* key) {
    return ExpertLayoutProblem(Tiny(shared, m), *MakeMethod(method, {}), key);
  };
  std::string key;
  EXPECT_EQ(problem("switch", 0, 1, &key), "");
  EXPECT_EQ(problem("switch", 1, 2, &key), "");
  for (const std::string m : {"expert_choice", "thor", "smoe_dropout", "dense", "uniform"}) {
    key.clear();
    EXPECT_NE(problem(m, 1, 1, &key), "") << m;
    EXPECT_EQ(key, "shared_experts") << m;
    key.clear();
    EXPECT_NE(problem(m, 0, 2, &key), "") << m;
    EXPECT_EQ(key, "expert_granularity") << m;
  }
  // Switch routes one expert: m 2 without a shared expert would be top-2.
  EXPECT_NE(problem("switch", 0, 2, &key).find("routes exactly 1 expert per token"),
            std::string::npos);
  EXPECT_EQ(key, "expert_granularity");
  // d_ff 256 does not split into 3; 2 shared with switch leave 2 * 1 - 2 = 0 routed.
  EXPECT_NE(problem("gating_dropout", 2, 3, &key), "");
  EXPECT_EQ(key, "expert_granularity");
  EXPECT_NE(problem("switch", 2, 2, &key).find("no routed expert"), std::string::npos);
  EXPECT_EQ(key, "shared_experts");
  // The run-spec check reports it under the key.
  RunSpec spec;
  spec.method = "expert_choice";
  spec.shared_experts = 1;
  const std::vector<SpecProblem> ps = CheckRunSpec(spec);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].key, "shared_experts");
  EXPECT_NE(ps[0].message.find("not a token-choice router"), std::string::npos) << ps[0].message;
}

// Granularity 1 and no shared expert is the plain layer: E experts of width d_ff, no shared
// FFN, and the plain parameter count.
TEST(SharedExperts, PlainLayoutIsThePlainModel) {
  LocalComm comm(Topology{1, 1});
  std::unique_ptr<Method> sw = MakeMethod("switch", {});
  Transformer a(Tiny(0, 1), sw.get(), &comm);
  EXPECT_EQ(a->MoeLayers()[0]->shared(), nullptr);
  EXPECT_EQ(a->MoeLayers()[0]->options().num_experts, 4);
  EXPECT_EQ(a->MoeLayers()[0]->options().d_hidden, 256);
  EXPECT_EQ(a->CountParams(1).total, 496768);
}

}  // namespace
}  // namespace moebench
