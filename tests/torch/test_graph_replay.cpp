// Note [Bounded capacity] (methods/router.h): what a CUDA graph captured from one training step
// of the static-shape MoE path would bake in, compared between two batches of the same padded
// shape (OpTrace: every op with its shapes, arguments and generator seeds), for one MoE layer
// and for a whole model's forward, loss and backward; and the bounded capacity's routing
// against the exact capacity's.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/model/sizes.h"
#include "harness/model/transformer.h"
#include "harness/moe/moe_layer.h"
#include "methods/capacity.h"
#include "methods/method.h"
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
// captured after a warm-up), traced.
std::vector<std::string> StaticStepTrace(const Case& c, const PaddedBatch& b, bool bounded) {
  LocalComm comm(Topology{1, 1});
  MoeLayer layer =
      testing::MakeMethodLayer(c.method, &comm, c.knobs, /*static_shapes=*/true, kExperts);
  at::manual_seed(2);
  const at::Tensor x = at::randn({b.t, 8}).requires_grad_(true);
  const RouteContext ctx = Context(b, bounded);
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

// A tiny model's training forward + loss + backward on the static path with bounded capacity
// (2 workers, dropout on), for a batch of 4 sentences padded to 8 tokens each side with these
// real lengths: its op trace, the meter's rows and the host reads.
struct ModelStep {
  std::vector<std::string> trace;
  std::map<std::pair<int, std::string>, CommCounters> meter;
  int64_t host_reads = 0;
};

ModelStep TracedModelStep(const Case& c, const std::vector<int64_t>& lengths) {
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
  RouteContext ctx;
  ctx.training = true;
  ctx.step = 1;
  ctx.bounded_capacity = true;
  ctx.statistics = false;  // a step that logs nothing
  ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(lengths);
  ctx.tgt_lengths = std::make_shared<const std::vector<int64_t>>(lengths);
  auto step = [&] {
    const at::Tensor logits = model->forward(src, tgt_in, ctx);
    auto [ce, nll] = LabelSmoothedCrossEntropy(logits, tgt_out, 0.1, model->pad_id());
    (ce / tgt_out.ne(model->pad_id()).sum() + model->AuxLoss()).backward();
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

// The whole model's step, not only its MoE layers, launches the same kernels with the same
// arguments for any batch of its shape, reads nothing from the device, and meters the same
// rows: a graph captured from one step would replay another (with jitter off and the second
// expert kept always: their per-step draws are the randomness docs/gpu.md lists as left).
TEST(GraphReplay, BoundedModelStepsOfOneShapeRunTheSameOps) {
  for (const Case& c : std::vector<Case>{{"switch", {{"jitter", "0"}}},
                                         {"gshard", {{"second_policy", "all"}}},
                                         {"topk", {{"k", "2"}, {"capacity_factor", "0.5"}}}}) {
    SCOPED_TRACE(Name(c));
    const ModelStep a = TracedModelStep(c, {8, 3, 6, 1});
    const ModelStep b = TracedModelStep(c, {5, 8, 2, 7});
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

}  // namespace
}  // namespace moebench
