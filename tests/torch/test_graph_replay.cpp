// Note [Bounded capacity] (methods/router.h): what a CUDA graph captured from one training step
// of the static-shape MoE path would bake in, compared between two batches of the same padded
// shape (OpTrace: every op with its shapes, arguments and generator seeds), for one MoE layer
// and for a whole model's training step (forward, loss, backward, update); and the bounded
// capacity's routing against the exact capacity's.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/model/attention.h"
#include "harness/model/sizes.h"
#include "harness/model/transformer.h"
#include "harness/moe/moe_layer.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/replayable_adam.h"
#include "methods/capacity.h"
#include "methods/method.h"
#include "methods/routing_util.h"
#include "tests/torch/op_trace.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

using testing::PaddedBatch;

constexpr int64_t kExperts = 8;

struct Case {
  std::string method;
  std::map<std::string, std::string> knobs;
};

// The token-choice routers with a capacity.
std::vector<Case> TokenChoiceCases() {
  return {{"switch", {}},
          {"switch", {{"priority", "random"}}},
          {"gshard", {}},
          {"topk", {{"k", "2"}, {"capacity_factor", "0.5"}}},
          {"topk", {{"k", "2"}, {"drop_policy", "position"}, {"capacity_factor", "0.5"}}},
          {"aux_free", {{"dropless", "false"}, {"capacity_factor", "0.75"}}}};
}

std::string Name(const Case& c) {
  std::string name = c.method;
  for (const auto& [k, v] : c.knobs) name += " " + k + "=" + v;
  return name;
}

const PaddedBatch kShort;                     // 31 real tokens of 48
const PaddedBatch kLong({8, 8, 2, 7, 4, 6});  // 35 real tokens of 48

RouteContext Context(const PaddedBatch& b, bool bounded) {
  RouteContext ctx = b.Context(/*with_lengths=*/true);
  ctx.bounded_capacity = bounded;
  return ctx;
}

// One forward + backward of a static-shape layer (after one untimed forward, as a graph is
// captured after a warm-up) at training step `step`, traced; graph_random: a graph step's
// routing randomness (Note [Routing randomness]).
std::vector<std::string> StaticStepTrace(const Case& c, const PaddedBatch& b, bool bounded,
                                         int64_t step = 1, bool graph_random = false) {
  LocalComm comm(Topology{1, 1});
  MoeLayer layer =
      testing::MakeMethodLayer(c.method, &comm, c.knobs, /*static_shapes=*/true, kExperts);
  at::manual_seed(2);
  const at::Tensor x = at::randn({b.t, 8}).requires_grad_(true);
  RouteContext ctx = Context(b, bounded);
  ctx.step = step;
  ctx.graph_random = graph_random;
  layer->forward(x, b.pad, ctx);
  return testing::OpTrace([&] {
    const at::Tensor y = layer->forward(x, b.pad, ctx);
    (y.sum() + layer->aux_loss()).backward();
  });
}

TEST(GraphReplay, TheExactCapacityBakesTheBatchIntoTheStep) {
  // Without the bound the step's ops carry the batch's capacity (switch: ceil(1.25 * 31 / 8) = 5
  // slots, then 6 for 35 real tokens): a graph captured from one batch would route the next
  // with the first one's capacity.
  const std::string diff = testing::TraceDifferences(StaticStepTrace({"switch", {}}, kShort, false),
                                                     StaticStepTrace({"switch", {}}, kLong, false));
  EXPECT_NE(diff.find("aten::lt(Long[48], 5, ) vs aten::lt(Long[48], 6, )"), std::string::npos)
      << diff;
}

TEST(GraphReplay, BoundedStaticStepsOfOneShapeRunTheSameOps) {
  for (const Case& c : TokenChoiceCases()) {
    SCOPED_TRACE(Name(c));
    const std::vector<std::string> a = StaticStepTrace(c, kShort, true);
    const std::vector<std::string> b = StaticStepTrace(c, kLong, true);
    EXPECT_GT(a.size(), 100u);
    EXPECT_EQ(testing::TraceDifferences(a, b), "");
  }
}

// Random routing decisions (switch's jitter and random priority, gshard's random or sampled
// second expert) draw from generators seeded per step: a graph captured at one step would
// replay its draws. A graph step's draws come from the device's default generator, whose
// state a graph advances at every replay: the ops of two steps are the same.
TEST(GraphReplay, GraphStepsDrawFromTheDefaultGenerator) {
  for (const Case& c : std::vector<Case>{{"switch", {{"jitter", "0.01"}}},
                                         {"switch", {{"jitter", "0"}, {"priority", "random"}}},
                                         {"gshard", {{"second_policy", "random"}}},
                                         {"gshard", {{"second_policy", "sampling"}}}}) {
    SCOPED_TRACE(Name(c));
    const std::string seeded = testing::TraceDifferences(StaticStepTrace(c, kShort, true, 1),
                                                         StaticStepTrace(c, kLong, true, 2));
    EXPECT_NE(seeded.find("Generator(seed"), std::string::npos) << seeded;
    EXPECT_EQ(testing::TraceDifferences(StaticStepTrace(c, kShort, true, 1, true),
                                        StaticStepTrace(c, kLong, true, 2, true)),
              "");
  }
}

// A replay draws from the device's default generator at the state it finds (Note [Training
// step graphs]), so a trace names that generator without its seed: two steps with the default
// generator reseeded between them (as the GPU test does, to give its eager and graph runs the
// same draws) run the same ops. A generator made for the step is named by its seed, which a
// graph would bake in.
TEST(GraphReplay, TracesNameTheDefaultGeneratorWithoutItsSeed) {
  at::Tensor x = at::empty({4});
  auto trace = [&](uint64_t seed, bool own_generator) {
    at::manual_seed(seed);
    return testing::OpTrace([&] {
      if (own_generator) {
        x.uniform_(0, 1, MakeGenerator(seed));
      } else {
        x.uniform_(0, 1, at::globalContext().defaultGenerator(x.device()));
      }
    });
  };
  const std::vector<std::string> a = trace(1, false), b = trace(2, false);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_NE(a[0].find("aten::uniform_("), std::string::npos) << a[0];
  EXPECT_NE(a[0].find("Generator(default)"), std::string::npos) << a[0];
  EXPECT_EQ(testing::TraceDifferences(a, b), "");
  const std::vector<std::string> c = trace(1, true), d = trace(2, true);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_NE(c[0].find("Generator(seed 1)"), std::string::npos) << c[0];
  EXPECT_NE(testing::TraceDifferences(c, d), "");
}

// Graph steps' draws follow the seeded ones' distributions: gshard keeps a second expert with
// probability min(1, 2 g2) either way, and switch's random priority is a permutation.
TEST(GraphReplay, GraphStepDrawsAreUniform) {
  RouteContext ctx;
  ctx.graph_random = true;
  at::manual_seed(5);
  const at::Tensor like = at::empty({20000});
  const at::Tensor u = RoutingUniform(ctx, 0, 1, like, 0.25, 0.75);
  EXPECT_GE(u.min().item<float>(), 0.25f);
  EXPECT_LT(u.max().item<float>(), 0.75f);
  EXPECT_NEAR(u.mean().item<double>(), 0.5, 0.01);  // 10 sd: 0.5 / sqrt(12 * 20000) = 0.001
  const at::Tensor perm = RoutingPermutation(ctx, 0, 2, 1000, like);
  EXPECT_EQ(perm.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(std::get<0>(perm.sort()), at::arange(1000)));
  EXPECT_FALSE(at::equal(perm, at::arange(1000)));
  // Seeded draws are the seeded generator's, whatever the default generator's state.
  ctx.graph_random = false;
  at::manual_seed(6);
  const at::Tensor s1 = RoutingUniform(ctx, 0, 1, like, 0.0, 1.0);
  at::manual_seed(7);
  EXPECT_TRUE(at::equal(s1, RoutingUniform(ctx, 0, 1, like, 0.0, 1.0)));
}

// The router alone: the bounded capacity keeps the exact capacity's choices, with the slots of
// a group whose every token is real.
TEST(GraphReplay, BoundedCapacityRoutesAsTheExactCapacity) {
  for (const Case& c : TokenChoiceCases()) {
    SCOPED_TRACE(Name(c));
    for (const PaddedBatch* b : {&kShort, &kLong}) {
      std::shared_ptr<Router> router =
          MakeMethod(c.method, c.knobs)->MakeRouter({0, false, 8, 16, kExperts});
      at::manual_seed(4);
      const at::Tensor x = at::randn({b->t, 8});
      const Routing exact = router->Route(x, b->pad, Context(*b, false));
      const Routing bounded = router->Route(x, b->pad, Context(*b, true));
      EXPECT_TRUE(at::equal(bounded.token, exact.token));
      EXPECT_TRUE(at::equal(bounded.expert, exact.expert));
      EXPECT_TRUE(at::equal(bounded.slot, exact.slot));
      EXPECT_TRUE(at::allclose(bounded.weight, exact.weight));
      EXPECT_EQ(bounded.dropped, exact.dropped);
      EXPECT_EQ(bounded.choices, exact.choices);
      EXPECT_EQ(bounded.capacity, router->CapacityFor(b->t, b->t, Context(*b, false)));
      EXPECT_EQ(exact.capacity,
                router->CapacityFor(b->t, b->pad.sum().item<int64_t>(), Context(*b, false)));
      EXPECT_GT(bounded.capacity, exact.capacity);
    }
  }
  // By hand, switch (capacity factor 1.25, at least 4 slots, 8 experts): 48 tokens all real
  // get ceil(1.25 * 48 / 8) = 8 slots; the 31 real ones ceil(4.84) = 5.
  EXPECT_EQ(Top1Capacity(1.25, 48, 8, 4), 8);
  EXPECT_EQ(Top1Capacity(1.25, 31, 8, 4), 5);
}

// The layer: the bounded static path gives the exact dynamic path's outputs, gradients and
// routing statistics.
TEST(GraphReplay, BoundedStaticLayerEqualsTheExactDynamicLayer) {
  for (const Case& c : TokenChoiceCases()) {
    SCOPED_TRACE(Name(c));
    LocalComm comm(Topology{2, 2});
    auto pass = [&](bool fixed, bool bounded) {
      MoeLayer layer = testing::MakeMethodLayer(c.method, &comm, c.knobs, fixed, kExperts);
      at::manual_seed(2);
      const at::Tensor x = at::randn({kLong.t, 8}).requires_grad_(true);
      const at::Tensor g = at::randn({kLong.t, 8});
      const at::Tensor y = layer->forward(x, kLong.pad, Context(kLong, bounded));
      ((y * g).sum() + layer->aux_loss()).backward();
      std::map<std::string, at::Tensor> grads;
      for (const auto& item : layer->named_parameters()) grads[item.key()] = item.value().grad();
      return std::make_tuple(y.detach(), x.grad(), grads, layer->last_stats());
    };
    const auto [y0, gx0, grads0, s0] = pass(false, false);
    const auto [y1, gx1, grads1, s1] = pass(true, true);
    EXPECT_TRUE(testing::AllClose(y1, y0));
    EXPECT_TRUE(testing::AllClose(gx1, gx0));
    for (const auto& [name, grad] : grads0) {
      EXPECT_TRUE(testing::AllClose(grads1.at(name), grad)) << name;
    }
    testing::ExpectSameStats(s0, s1);
  }
}

// topk's probs policy among equal scores: the bounded cut keeps the earliest tokens (a stable
// sort), by hand: 16 identical tokens, 12 real, one expert chosen by all; k 1, capacity factor
// 0.5, 2 experts, at least 1 slot: ceil(0.5 * 12 / 2) = 3 slots of the bound's ceil(0.5 * 16 / 2)
// = 4, so tokens 0, 1, 2 keep theirs.
TEST(GraphReplay, BoundedProbsPolicyKeepsTheEarliestOfEqualScores) {
  std::shared_ptr<Router> router =
      MakeMethod("topk", {{"k", "1"}, {"capacity_factor", "0.5"}, {"min_capacity", "1"}})
          ->MakeRouter({0, false, 8, 16, 2});
  const at::Tensor x = at::randn({1, 8}).expand({16, 8}).contiguous();
  const at::Tensor pad = at::arange(16) < 12;
  RouteContext ctx;
  ctx.training = true;
  ctx.bounded_capacity = true;
  const Routing r = router->Route(x, pad, ctx);
  EXPECT_EQ(r.capacity, 4);
  EXPECT_EQ(r.token.sizes(), at::IntArrayRef({3}));
  EXPECT_TRUE(at::equal(r.token, at::arange(3)));
  EXPECT_TRUE(at::equal(r.slot, at::arange(3)));
  EXPECT_EQ(r.dropped, 9);
}

TEST(GraphReplay, RoutersWhoseShapesFollowTheBatchAreRefused) {
  for (const std::string method : {"expert_choice", "gating_dropout"}) {
    std::shared_ptr<Router> router =
        MakeMethod(method, {})->MakeRouter({0, false, 8, 16, kExperts});
    try {
      router->Route(at::randn({kLong.t, 8}), kLong.pad, Context(kLong, true));
      ADD_FAILURE() << method << " routed with a bounded capacity";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("bounded capacity"), std::string::npos) << e.what();
    }
  }
}

// A tiny model's training step on the static path with bounded capacity (2 workers, dropout
// on): forward, the method's objective (divided by the batch's target tokens as a tensor),
// backward, the trainer's gradient clipping and Adam update (Note [Replayable optimizer step]),
// for a batch of 4 sentences padded to 8 tokens each side with
// these real lengths. Its second step's op trace, the meter's rows and the host reads.
struct ModelStep {
  std::vector<std::string> trace;
  std::map<std::pair<int, std::string>, CommCounters> meter;
  int64_t host_reads = 0;
};

ModelStep TracedModelStep(const Case& c, const std::vector<int64_t>& lengths, int64_t route_step) {
  at::manual_seed(1);
  ModelConfig cfg = SizePreset("tiny");
  cfg.vocab = 50;
  const std::unique_ptr<Method> method = MakeMethod(c.method, c.knobs);
  LocalComm comm(Topology{2, 2});
  Transformer model(cfg, method.get(), &comm, "padded", /*static_shapes=*/true);
  model->train();
  const int64_t b = static_cast<int64_t>(lengths.size()), s = 8;
  at::Tensor src = at::randint(4, 50, {b, s}, at::kLong);
  at::Tensor tgt = at::randint(4, 50, {b, s + 1}, at::kLong);
  for (int64_t i = 0; i < b; ++i) {
    src[i].narrow(0, lengths[i], s - lengths[i]).fill_(model->pad_id());
    tgt[i].narrow(0, lengths[i] + 1, s - lengths[i]).fill_(model->pad_id());
  }
  const at::Tensor tgt_in = tgt.narrow(1, 0, s).contiguous();
  const at::Tensor tgt_out = tgt.narrow(1, 1, s).contiguous();
  int64_t ntokens = 0;  // the loss's divisor, a device tensor as ToDevice makes it
  for (int64_t n : lengths) ntokens += n;
  const at::Tensor ntokens_tensor = at::full({}, static_cast<double>(ntokens), at::kDouble);
  RouteContext ctx;
  ctx.training = true;
  ctx.step = route_step;
  ctx.bounded_capacity = true;
  ctx.graph_random = true;
  ctx.statistics = false;  // a step that logs nothing
  ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(lengths);
  ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(lengths);
  const ParamSplit split = SplitParams(model);
  std::vector<at::Tensor> trainable = split.dense;
  trainable.insert(trainable.end(), split.expert.begin(), split.expert.end());
  torch::optim::Adam adam(trainable, torch::optim::AdamOptions(1e-3).betas({0.9, 0.98}));
  ReplayableAdam update(adam, 1e-3, /*warmup=*/10);
  int64_t n = 0;
  auto step = [&] {
    for (at::Tensor& p : trainable) {
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    const ForwardFn forward = [&](int /*pass*/) {
      ForwardOutput out;
      out.logits = model->forward(src, tgt_in, ctx);
      std::tie(out.ce_sum, out.nll_sum) =
          LabelSmoothedCrossEntropy(out.logits, tgt_out, 0.1, model->pad_id());
      out.aux = model->AuxLoss();
      out.target_mask = tgt_out.ne(model->pad_id());
      out.ntokens = ntokens;
      out.normaliser = ntokens_tensor;
      return out;
    };
    method->Objective(forward).loss.backward();
    ClipGlobalGradNorm(comm, split, 1.0);
    update.Step(++n);
  };
  step();
  comm.meter().Drain();
  ModelStep out;
  const int64_t reads = HostReadCount();
  out.trace = testing::OpTrace(step);
  out.host_reads = HostReadCount() - reads;
  out.meter = comm.meter().Drain();
  return out;
}

// The whole model's training step, not only its MoE layers, launches the same kernels with the same
// arguments for any batch of its shape, reads nothing from the device, and meters the same
// rows: a graph captured from one step would replay another (the methods' default knobs:
// switch's jitter and gshard's random second expert draw as graph steps draw, from the default
// generator).
TEST(GraphReplay, BoundedModelStepsOfOneShapeRunTheSameOps) {
  for (const Case& c : std::vector<Case>{
           {"switch", {}}, {"gshard", {}}, {"topk", {{"k", "2"}, {"capacity_factor", "0.5"}}}}) {
    SCOPED_TRACE(Name(c));
    const ModelStep a = TracedModelStep(c, {8, 3, 6, 1}, /*route_step=*/1);
    const ModelStep b = TracedModelStep(c, {5, 8, 2, 7}, /*route_step=*/2);
    EXPECT_GT(a.trace.size(), 1000u);
    EXPECT_EQ(testing::TraceDifferences(a.trace, b.trace), "");
    EXPECT_EQ(a.host_reads, 0);
    EXPECT_EQ(b.host_reads, 0);
    for (const std::string& op : a.trace) {  // nor any read outside HostRead
      EXPECT_EQ(op.find("aten::item"), std::string::npos);
      EXPECT_EQ(op.find("aten::_local_scalar_dense"), std::string::npos);
    }
    ASSERT_EQ(a.meter.size(), b.meter.size());
    for (const auto& [key, ca] : a.meter) {
      SCOPED_TRACE("layer " + std::to_string(key.first) + " " + key.second);
      const CommCounters& cb = b.meter.at(key);
      EXPECT_EQ(ca.calls, cb.calls);
      EXPECT_EQ(ca.wire, cb.wire);
      EXPECT_EQ(ca.logical, cb.logical);
    }
  }
}

// The objective divides the summed losses by the step's target tokens: given as a device
// tensor (what the trainer passes), two batches' counts run the same ops; given as a host count
// only, each count is an argument of the step's ops, which a graph would bake in.
TEST(GraphReplay, TheLossIsDividedByADeviceCount) {
  const std::unique_ptr<Method> method = MakeMethod("switch", {});
  auto objective = [&](int64_t ntokens, bool as_tensor, at::Tensor* loss) {
    // Made before the step, as ToDevice makes it with the batch.
    const at::Tensor normaliser =
        as_tensor ? at::full({}, static_cast<double>(ntokens), at::kDouble) : at::Tensor();
    const at::Tensor ce = at::full({}, 10.0f), aux = at::full({}, 0.5f);
    const ForwardFn forward = [&](int /*pass*/) {
      ForwardOutput out;
      out.ce_sum = ce;
      out.aux = aux;
      out.ntokens = ntokens;
      out.normaliser = normaliser;
      return out;
    };
    return testing::OpTrace([&] { *loss = method->Objective(forward).loss; });
  };
  at::Tensor a, b, c, d;
  EXPECT_EQ(testing::TraceDifferences(objective(7, true, &a), objective(9, true, &b)), "");
  EXPECT_NE(testing::TraceDifferences(objective(7, false, &c), objective(9, false, &d)), "");
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_EQ(a.item<float>(), 10.0f / 7.0f + 0.5f);  // the host divisor's bits (on the CPU)
  EXPECT_EQ(b.item<float>(), 10.0f / 9.0f + 0.5f);
  EXPECT_EQ(c.item<float>(), a.item<float>());
}

// A graph step's padded batch has all-pad sentences: attention over keys that are all masked
// was 0/0 = NaN, which reached every weight's gradient through the backward even with the
// row's loss weighted 0. Now such a row is finite, and a masked key still gets exactly zero
// weight where the row has a real key (as with -inf): changing it changes no real query's
// output by a bit.
TEST(GraphReplay, AttentionOverAnAllPadSentenceStaysFinite) {
  at::manual_seed(8);
  MultiheadAttention attn(16, 4);
  const at::Tensor x = at::randn({2, 5, 16});
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "not causal");
    at::Tensor pad = at::zeros({2, 5}, at::kBool);
    pad[0].fill_(true);                  // sentence 0: all pad
    pad[1].narrow(0, 3, 2).fill_(true);  // sentence 1: 3 real tokens
    attn->zero_grad();
    const at::Tensor y = attn->forward(x, x, pad, causal);
    EXPECT_TRUE(at::isfinite(y).all().item<bool>());
    (y[1].sum() + 0 * y[0].sum()).backward();
    for (const at::Tensor& p : attn->parameters()) {
      EXPECT_TRUE(at::isfinite(p.grad()).all().item<bool>());
    }
    at::Tensor moved = x.clone();
    moved[1].narrow(0, 3, 2).normal_();  // sentence 1's two pad positions
    const at::Tensor y_moved = attn->forward(moved, moved, pad, causal);
    EXPECT_TRUE(at::equal(y_moved[1].narrow(0, 0, 3), y[1].narrow(0, 0, 3).detach()));
  }
}

}  // namespace
}  // namespace moebench
