// Note [Static-shape path] (harness/moe/moe_layer.cpp): the static path's outputs, gradients,
// statistics, counted bytes and expert FLOPs equal the dynamic path's, for every router that
// routes with a capacity, on one worker and on several workers over two nodes; it reads nothing
// from the device; dropless routers are refused with the reason.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness/autocast.h"
#include "harness/comm/c10d_comm.h"
#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/moe/moe_layer.h"
#include "methods/capacity.h"
#include "methods/method.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

using testing::PaddedBatch;

constexpr int64_t kExperts = 8;

MoeLayer MakeLayer(const std::string& method, const std::map<std::string, std::string>& knobs,
                   Comm* comm, bool static_shapes) {
  return testing::MakeMethodLayer(method, comm, knobs, static_shapes, kExperts);
}

struct Pass {
  at::Tensor y, x_grad;
  std::map<std::string, at::Tensor> grads;
};

// Forward and backward of a weighted sum of the output (weights g) plus the aux loss.
Pass ForwardBackward(MoeLayer& layer, const at::Tensor& x0, const at::Tensor& pad,
                     const RouteContext& ctx, const at::Tensor& g) {
  Pass p;
  const at::Tensor x = x0.clone().requires_grad_(true);
  p.y = layer->forward(x, pad, ctx);
  const at::Tensor loss = (p.y * g).sum() + layer->aux_loss();
  if (loss.requires_grad()) loss.backward();  // gate-expert-drop: nothing to differentiate
  p.x_grad = x.grad();
  for (const auto& item : layer->named_parameters()) {
    if (item.value().grad().defined()) p.grads[item.key()] = item.value().grad();
  }
  return p;
}

// The same weights for both paths (seeded), on a batch of padded sentences whose lengths the
// context carries.
Pass ForwardBackward(MoeLayer& layer, const at::Tensor& x0, const PaddedBatch& b) {
  at::manual_seed(5);
  const at::Tensor g = at::randn({b.t, x0.size(1)});
  return ForwardBackward(layer, x0, b.pad, b.Context(/*with_lengths=*/true), g);
}

void ExpectSameCounters(const CommMeter& dynamic, const CommMeter& fixed) {
  int phases = 0;
  for (const auto& [key, d] : dynamic.pending()) {
    if (key.second == "counts") {  // the padded buffer needs no split sizes
      EXPECT_EQ(fixed.pending().count(key), 0u);
      continue;
    }
    SCOPED_TRACE("phase " + key.second);
    ASSERT_EQ(fixed.pending().count(key), 1u);
    const CommCounters& s = fixed.pending().at(key);
    EXPECT_EQ(s.calls, d.calls);
    EXPECT_EQ(s.logical, d.logical);
    EXPECT_EQ(s.wire, d.wire);
    EXPECT_DOUBLE_EQ(s.modeled_ms, d.modeled_ms);
    ++phases;
  }
  EXPECT_EQ(fixed.pending().size(), static_cast<size_t>(phases));
}

struct Case {
  std::string method;
  std::map<std::string, std::string> knobs;
};

// The routers that route training tokens with a capacity (methods/*.cpp set Routing::capacity):
// switch, gshard and gating_dropout (capacity factor), topk and aux_free unless dropless,
// expert_choice (k tokens per expert). Gating dropout with p = 1 skips the exchange (and with
// gate_expert_drop the experts) at every step.
std::vector<Case> CapacityCases() {
  return {{"switch", {}},
          {"gshard", {}},
          {"topk", {{"k", "2"}, {"capacity_factor", "0.5"}}},
          {"topk", {{"k", "2"}, {"drop_policy", "position"}, {"score_func", "sigmoid"}}},
          {"topk", {{"k", "2"}, {"node_limit_topk", "1"}}},
          {"aux_free", {{"dropless", "false"}, {"capacity_factor", "0.75"}}},
          {"expert_choice", {}},
          {"gating_dropout", {{"p", "0"}}},
          {"gating_dropout", {{"p", "1"}}},
          {"gating_dropout", {{"p", "1"}, {"gate_expert_drop", "true"}}}};
}

std::string Describe(const Case& c) {
  std::string s = c.method;
  for (const auto& [k, v] : c.knobs) s += " " + k + "=" + v;
  return s;
}

TEST(StaticPath, EqualsTheDynamicPathForEveryCapacityRouter) {
  const PaddedBatch b;
  int64_t dropped = 0, other_node = 0, skipped_exchange = 0;  // the cases reach each part
  for (const Case& c : CapacityCases()) {
    for (const Topology& topo : {Topology{1, 1}, Topology{2, 1}, Topology{4, 2}}) {
      SCOPED_TRACE(Describe(c) + ", " + std::to_string(topo.workers) + " workers, " +
                   std::to_string(topo.num_nodes()) + " nodes");
      LocalComm dyn_comm(topo), static_comm(topo);
      MoeLayer dynamic = MakeLayer(c.method, c.knobs, &dyn_comm, false);
      MoeLayer fixed = MakeLayer(c.method, c.knobs, &static_comm, true);
      at::manual_seed(1);
      const at::Tensor x = at::randn({b.t, 8});
      const Pass d = ForwardBackward(dynamic, x, b);
      Pass s;
      try {
        s = ForwardBackward(fixed, x, b);
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        continue;
      }
      EXPECT_TRUE(testing::AllClose(s.y, d.y));
      ASSERT_EQ(s.x_grad.defined(), d.x_grad.defined());
      if (d.x_grad.defined()) {
        EXPECT_TRUE(testing::AllClose(s.x_grad, d.x_grad));
      }
      EXPECT_EQ(s.grads.size(), d.grads.size());
      for (const auto& [name, g] : d.grads) {
        ASSERT_EQ(s.grads.count(name), 1u) << name;
        EXPECT_TRUE(testing::AllClose(s.grads.at(name), g)) << name;
      }
      testing::ExpectSameStats(dynamic->last_stats(), fixed->last_stats());
      dropped += dynamic->last_stats().dropped;
      other_node += dynamic->last_stats().other_node_copies;
      skipped_exchange += dynamic->last_stats().exchange_skipped ? 1 : 0;
      // Bytes and FLOPs wait on the device until flushed.
      for (const auto& [key, counters] : static_comm.meter().pending()) {
        EXPECT_EQ(counters.logical, (std::array<int64_t, kNumTrafficClasses>{})) << key.second;
      }
      EXPECT_EQ(fixed->expert_flops(), 0.0);
      fixed->FlushDeviceTally();
      ExpectSameCounters(dyn_comm.meter(), static_comm.meter());
      // fwd and bwd, unless the experts were skipped (gate-expert-drop: no exchange at all)
      EXPECT_EQ(static_comm.meter().pending().size(),
                dynamic->last_stats().experts_skipped ? 0u : 2u);
      EXPECT_DOUBLE_EQ(fixed->expert_flops(), dynamic->expert_flops());
      EXPECT_EQ(fixed->expert_flops_by_worker(), dynamic->expert_flops_by_worker());
      if (!dynamic->last_stats().experts_skipped) {
        EXPECT_GT(dynamic->expert_flops(), 0.0);
      }
      fixed->FlushDeviceTally();  // nothing left: no second count
      EXPECT_DOUBLE_EQ(fixed->expert_flops(), dynamic->expert_flops());
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(other_node, 0);
  EXPECT_GT(skipped_exchange, 0);
}

// A dropped choice adds nothing, even where its expert's output is not finite: with every
// expert's output bias at +inf the kept tokens' outputs are inf, the dropped tokens' finite, on
// both paths.
TEST(StaticPath, ADroppedChoiceAddsNothingEvenWhenNotFinite) {
  const PaddedBatch b;
  LocalComm dyn_comm(Topology{2, 1}), static_comm(Topology{2, 1});
  const std::map<std::string, std::string> knobs = {{"capacity_factor", "0.5"},
                                                    {"min_capacity", "1"}};
  MoeLayer dynamic = MakeLayer("switch", knobs, &dyn_comm, false);
  MoeLayer fixed = MakeLayer("switch", knobs, &static_comm, true);
  {
    at::NoGradGuard no_grad;
    dynamic->experts().b2.fill_(std::numeric_limits<float>::infinity());
    fixed->experts().b2.fill_(std::numeric_limits<float>::infinity());
  }
  at::manual_seed(1);
  const at::Tensor x = at::randn({b.t, 8});
  at::NoGradGuard no_grad;
  const at::Tensor yd = dynamic->forward(x, b.pad, b.Context(true));
  const at::Tensor ys = fixed->forward(x, b.pad, b.Context(true));
  ASSERT_GT(dynamic->last_stats().dropped, 0);
  const at::Tensor finite = yd.isfinite().all(1);
  EXPECT_GT(finite.sum().item<int64_t>(), 0);  // dropped and padding tokens
  EXPECT_FALSE(finite.all().item<bool>());     // kept ones
  EXPECT_TRUE(at::equal(ys.isfinite().all(1), finite));
  EXPECT_TRUE(at::equal(ys.isnan(), yd.isnan()));
  EXPECT_TRUE(
      at::equal(at::where(finite.unsqueeze(1), ys, 0), at::where(finite.unsqueeze(1), yd, 0)));
}

// A group without real tokens (a batch of fewer sentences than workers is split by tokens) may
// get capacity 0 from a router with no minimum (gshard): it routes nothing, and the layer
// equals the dynamic one.
TEST(StaticPath, AGroupWithoutRealTokensRoutesNothing) {
  LocalComm dyn_comm(Topology{2, 1}), static_comm(Topology{2, 1});
  MoeLayer dynamic = MakeLayer("gshard", {}, &dyn_comm, false);
  MoeLayer fixed = MakeLayer("gshard", {}, &static_comm, true);
  RouteContext ctx;
  ctx.training = true;
  ctx.seed = 3;
  ctx.step = 1;
  ctx.total_tokens = 8;
  ctx.tokens_per_sentence = 8;
  ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(1, 2);  // 2 real of 8
  const at::Tensor pad = at::arange(8) < 2;
  at::manual_seed(1);
  const at::Tensor x = at::randn({8, 8});
  const at::Tensor yd = dynamic->forward(x, pad, ctx);
  const at::Tensor ys = fixed->forward(x, pad, ctx);
  EXPECT_TRUE(testing::AllClose(ys, yd));
  EXPECT_EQ(fixed->last_stats().tokens_per_expert, dynamic->last_stats().tokens_per_expert);
}

TEST(StaticPath, RefusesRoutingWithoutCapacity) {
  const PaddedBatch b;
  // Dropless by design (THOR's random experts, SMoE-Dropout's growing k, uniform, aux_free's
  // default, topk's dropless), or balanced without slots (base, sinkhorn, hash): no capacity to
  // shape a buffer with.
  const std::vector<Case> cases = {{"thor", {}},
                                   {"smoe_dropout", {}},
                                   {"uniform", {}},
                                   {"aux_free", {}},
                                   {"topk", {{"dropless", "true"}}},
                                   {"base", {}},
                                   {"sinkhorn", {}},
                                   {"hash", {}}};
  for (const Case& c : cases) {
    SCOPED_TRACE(Describe(c));
    LocalComm comm(Topology{2, 1});
    MoeLayer layer = MakeLayer(c.method, c.knobs, &comm, true);
    const at::Tensor x = at::randn({b.t, 8}, at::requires_grad());
    RouteContext ctx = b.Context(true);
    ctx.token_ids = at::arange(b.t, at::kLong);  // hash routes by token id
    try {
      layer->forward(x, b.pad, ctx);
      ADD_FAILURE() << "the static path took routing without a capacity";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("moe_path static: needs capacity-bounded routing"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(StaticPath, EvaluationTakesTheDynamicPath) {
  const PaddedBatch b;
  LocalComm comm(Topology{2, 1});
  MoeLayer layer = MakeLayer("switch", {}, &comm, true);
  RouteContext ctx = b.Context(true);
  ctx.training = false;
  at::NoGradGuard no_grad;
  layer->forward(at::randn({b.t, 8}), b.pad, ctx);
  // The dynamic path's assignments and its split-size exchange, and no tally to flush.
  EXPECT_TRUE(layer->last_assignments().token.defined());
  EXPECT_EQ(comm.meter().pending().count({0, "counts"}), 1u);
  const double flops = layer->expert_flops();
  EXPECT_GT(flops, 0.0);
  layer->FlushDeviceTally();
  EXPECT_EQ(layer->expert_flops(), flops);
}

TEST(StaticPath, Bf16AgreesWithTheDynamicPathToBf16Rounding) {
  const PaddedBatch b;
  for (const std::string method : {"switch", "gshard"}) {
    SCOPED_TRACE(method);
    LocalComm dyn_comm(Topology{2, 1}), static_comm(Topology{2, 1});
    MoeLayer dynamic = MakeLayer(method, {}, &dyn_comm, false);
    MoeLayer fixed = MakeLayer(method, {}, &static_comm, true);
    at::manual_seed(1);
    const at::Tensor x = at::randn({b.t, 8});
    Pass d, s;
    {
      CastCacheScope cast_once(true);
      AutocastScope autocast(at::kCPU, true);
      d = ForwardBackward(dynamic, x, b);
      s = ForwardBackward(fixed, x, b);
    }
    EXPECT_EQ(s.y.scalar_type(), d.y.scalar_type());
    // The GEMMs differ in shape (one batched pair over padded buffers, one pair per expert on
    // its rows), so the bf16 sums round differently: bf16 has 8 bits of mantissa.
    EXPECT_TRUE(testing::AllClose(s.y.to(at::kFloat), d.y.to(at::kFloat), 2e-2, 2e-2));
    EXPECT_TRUE(testing::AllClose(s.x_grad, d.x_grad, 2e-2, 2e-2));
    for (const auto& [name, g] : d.grads) {
      EXPECT_EQ(s.grads.at(name).scalar_type(), at::kFloat) << name;  // fp32 master weights
      EXPECT_TRUE(testing::AllClose(s.grads.at(name), g, 5e-2, 5e-2)) << name;
    }
    testing::ExpectSameStats(dynamic->last_stats(), fixed->last_stats());
    fixed->FlushDeviceTally();
    ExpectSameCounters(dyn_comm.meter(), static_comm.meter());  // bf16 rows: 2 bytes each
  }
}

// Router::CapacityFor is the capacity Route gives a group: for every capacity router (and
// gating dropout over a base without a minimum), in training, evaluation, any-k evaluation and
// incremental decoding, on groups with padding, without, and without real tokens; 0 for the
// routers without one. (Route takes its capacity from CapacityFor; what this pins is every
// adjustment Route makes after it, such as gating dropout's local slots.)
TEST(StaticPath, CapacityForIsTheCapacityRouteGives) {
  std::vector<Case> cases = CapacityCases();
  cases.push_back({"topk", {{"dropless", "true"}}});
  cases.push_back({"thor", {}});
  cases.push_back({"uniform", {}});
  cases.push_back({"gating_dropout", {{"p", "1"}, {"min_capacity", "0"}}});
  int with_capacity = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(Describe(c));
    std::shared_ptr<Router> router =
        MakeMethod(c.method, c.knobs)->MakeRouter({0, false, 8, 16, kExperts});
    for (const int64_t t : {int64_t{3}, int64_t{48}}) {
      for (const int64_t real : {t, t - 2, int64_t{0}}) {
        // training, evaluation, incremental decoding, any-k evaluation
        for (const int mode : {0, 1, 2, 3}) {
          RouteContext ctx;
          ctx.training = mode == 0;
          ctx.incremental = mode == 2;
          ctx.eval_k = mode == 3 ? 3 : 0;
          ctx.seed = 3;
          ctx.step = 1;
          ctx.topology = Topology{2, 1};
          ctx.real_tokens = real;
          const at::Tensor pad = at::arange(t) < real;
          at::manual_seed(1);
          at::NoGradGuard no_grad;
          const Routing r = router->Route(at::randn({t, 8}), pad, ctx);
          EXPECT_EQ(router->CapacityFor(t, real, ctx), r.capacity)
              << t << " tokens, " << real << " real, mode " << mode;
          if (mode == 0 && real > 0 && r.capacity > 0) ++with_capacity;
        }
      }
    }
  }
  // The capacity cases but gate-expert-drop (which routes nothing), on 4 groups with real
  // tokens each.
  EXPECT_GE(with_capacity, 10 * 4);
  // By hand (Note [Capacity rounding]): switch, cf 1.25, E 8, 46 real tokens: ceil(7.19) = 8;
  // expert choice, c 2: k = round(2 * 46 / 8) = 12.
  RouteContext train;
  train.training = true;
  EXPECT_EQ(MakeMethod("switch", {})->MakeRouter({0, false, 8, 16, 8})->CapacityFor(48, 46, train),
            8);
  auto ec = MakeMethod("expert_choice", {})->MakeRouter({0, false, 8, 16, 8});
  EXPECT_EQ(ec->CapacityFor(48, 46, train), 12);
  EXPECT_EQ(ec->CapacityFor(3, 3, train), 1);  // round(2 * 3 / 8) = 1
}

struct RankRun {
  Pass pass;
  MoeLayerStats stats;
  std::map<std::pair<int, std::string>, CommCounters> counters;
  double flops = 0;
  std::vector<double> flops_by_worker;
};

// Counters summed over ranks (as the trainer's ReduceCounters sums bytes), per (layer, phase),
// without the dynamic path's split-size exchange.
std::map<std::pair<int, std::string>, CommCounters> SummedCounters(
    const std::vector<RankRun>& runs) {
  std::map<std::pair<int, std::string>, CommCounters> sum;
  for (const RankRun& run : runs) {
    for (const auto& [key, c] : run.counters) {
      if (key.second != "counts") sum[key].Add(c);
    }
  }
  return sum;
}

// Note [Static-shape path] on ranks: W ranks of a Gloo group, each with its own sentences and
// experts, compute on the static path what they compute on the dynamic one -- outputs, input
// and parameter gradients and routing statistics per rank; bytes, calls and modeled times and
// expert FLOPs summed over ranks -- for the capacity routers, with ranks whose capacities
// differ (their buffers are padded to the largest for the experts' batched GEMMs).
TEST(StaticPath, EqualsTheDynamicPathOnGlooRanks) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  const PaddedBatch b;  // sentence lengths 6 3 8 | 1 8 5: 17 and 14 real tokens on 2 ranks
  {
    // Hand computation: gshard (cf 1, no minimum) gives the two ranks ceil(2 * 17 / 8) = 5 and
    // ceil(2 * 14 / 8) = 4 slots per expert, so its case exchanges buffers of unequal sizes.
    RouteContext train;
    train.training = true;
    auto gs = MakeMethod("gshard", {})->MakeRouter({0, false, 8, 16, kExperts});
    ASSERT_EQ(gs->CapacityFor(24, 17, train), 5);
    ASSERT_EQ(gs->CapacityFor(24, 14, train), 4);
  }
  std::vector<Case> cases = {{"switch", {{"capacity_factor", "2"}, {"min_capacity", "1"}}},
                             {"gshard", {}},
                             {"topk", {{"k", "2"}, {"capacity_factor", "0.5"}}},
                             {"aux_free", {{"dropless", "false"}, {"capacity_factor", "0.75"}}},
                             {"expert_choice", {}},
                             {"gating_dropout", {{"p", "1"}}},
                             {"gating_dropout", {{"p", "1"}, {"gate_expert_drop", "true"}}}};
  int64_t dropped = 0, skipped = 0;
  for (const Case& c : cases) {
    for (const Topology& topo : {Topology{2, 1}, Topology{4, 2}}) {
      if (topo.workers == 4 && c.method != "gshard" && c.method != "switch") continue;
      const int w = topo.workers;
      SCOPED_TRACE(Describe(c) + ", " + std::to_string(w) + " ranks");
      at::manual_seed(1);
      const at::Tensor x = at::randn({b.t, 8});
      at::manual_seed(5);
      const at::Tensor g = at::randn({b.t, 8});
      std::vector<RankRun> dyn(static_cast<size_t>(w)), fix(static_cast<size_t>(w));
      std::mutex build;  // the layers' seeded initialisation, one at a time
      const bool ran = testing::OnRanks(topo, [&](int r, Comm& comm) {
        MoeLayer dl{nullptr}, sl{nullptr};
        {
          std::lock_guard<std::mutex> lock(build);
          dl = MakeLayer(c.method, c.knobs, &comm, false);
          sl = MakeLayer(c.method, c.knobs, &comm, true);
        }
        dl->KeepExperts(r * kExperts / w, kExperts / w);
        sl->KeepExperts(r * kExperts / w, kExperts / w);
        const testing::RankPart part = testing::RankPartOf(b, r, w);
        const RouteContext& ctx = part.ctx;
        const at::Tensor xr = x.narrow(0, part.first, part.tokens);
        const at::Tensor pr = b.pad.narrow(0, part.first, part.tokens);
        const at::Tensor gr = g.narrow(0, part.first, part.tokens);
        RankRun& d = dyn[static_cast<size_t>(r)];
        d.pass = ForwardBackward(dl, xr, pr, ctx, gr);
        d.stats = dl->last_stats();
        d.counters = comm.meter().Drain();
        d.flops = dl->expert_flops();
        d.flops_by_worker = dl->expert_flops_by_worker();
        RankRun& s = fix[static_cast<size_t>(r)];
        s.pass = ForwardBackward(sl, xr, pr, ctx, gr);
        s.stats = sl->last_stats();
        sl->FlushDeviceTally();
        s.counters = comm.meter().Drain();
        s.flops = sl->expert_flops();
        s.flops_by_worker = sl->expert_flops_by_worker();
      });
      if (!ran) continue;
      double dyn_flops = 0, fix_flops = 0;
      std::vector<double> dyn_by(w, 0.0), fix_by(w, 0.0);
      for (int r = 0; r < w; ++r) {
        SCOPED_TRACE("rank " + std::to_string(r));
        const RankRun& d = dyn[static_cast<size_t>(r)];
        const RankRun& s = fix[static_cast<size_t>(r)];
        EXPECT_TRUE(testing::AllClose(s.pass.y, d.pass.y));
        ASSERT_EQ(s.pass.x_grad.defined(), d.pass.x_grad.defined());
        if (d.pass.x_grad.defined()) {
          EXPECT_TRUE(testing::AllClose(s.pass.x_grad, d.pass.x_grad));
        }
        EXPECT_EQ(s.pass.grads.size(), d.pass.grads.size());
        for (const auto& [name, grad] : d.pass.grads) {
          ASSERT_EQ(s.pass.grads.count(name), 1u) << name;
          EXPECT_TRUE(testing::AllClose(s.pass.grads.at(name), grad)) << name;
        }
        testing::ExpectSameStats(d.stats, s.stats);
        dropped += d.stats.dropped;
        skipped += d.stats.exchange_skipped ? 1 : 0;
        dyn_flops += d.flops;
        fix_flops += s.flops;
        for (int h = 0; h < w && h < static_cast<int>(d.flops_by_worker.size()); ++h) {
          dyn_by[h] += d.flops_by_worker[h];
        }
        for (int h = 0; h < w && h < static_cast<int>(s.flops_by_worker.size()); ++h) {
          fix_by[h] += s.flops_by_worker[h];
        }
      }
      EXPECT_DOUBLE_EQ(fix_flops, dyn_flops);
      for (int h = 0; h < w; ++h) EXPECT_DOUBLE_EQ(fix_by[h], dyn_by[h]) << "worker " << h;
      const auto ds = SummedCounters(dyn), ss = SummedCounters(fix);
      EXPECT_EQ(ss.size(), ds.size());
      for (const auto& [key, dc] : ds) {
        SCOPED_TRACE("phase " + key.second);
        ASSERT_EQ(ss.count(key), 1u);
        const CommCounters& sc = ss.at(key);
        EXPECT_EQ(sc.calls, dc.calls);
        EXPECT_EQ(sc.logical, dc.logical);
        EXPECT_EQ(sc.wire, dc.wire);
        EXPECT_NEAR(sc.modeled_ms, dc.modeled_ms, 1e-9 * std::max(1.0, dc.modeled_ms));
      }
      if (!dyn[0].stats.experts_skipped) {
        EXPECT_GT(dyn_flops, 0.0);
        EXPECT_FALSE(ds.empty());
      }
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(skipped, 0);
}

// One Gloo rank runs the layer as one process does, on both paths (the GPU twin with one NCCL
// rank is Gpu.OneNcclRankMatchesOneProcess).
TEST(StaticPath, OneGlooRankMatchesOneProcess) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  for (const std::string method : {"switch", "gshard"}) {
    testing::ExpectOneRankMatchesOneProcess(method, at::Device(at::kCPU));
  }
}

// A rank's static path needs every rank's share of the batch to size the buffers it receives:
// without them it says so (rather than waiting in an exchange of mismatched sizes).
TEST(StaticPath, RanksWithoutTheBatchSharesAreRefused) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  const PaddedBatch b;
  std::mutex build;
  std::vector<std::string> errors(2);
  testing::OnRanks(Topology{2, 1}, [&](int r, Comm& comm) {
    MoeLayer layer{nullptr};
    {
      std::lock_guard<std::mutex> lock(build);
      layer = MakeLayer("switch", {}, &comm, true);
    }
    layer->KeepExperts(r * kExperts / 2, kExperts / 2);
    testing::RankPart part = testing::RankPartOf(b, r, 2);
    part.ctx.rank_shares = nullptr;
    try {
      layer->forward(at::zeros({part.tokens, 8}), b.pad.narrow(0, part.first, part.tokens),
                     part.ctx);
    } catch (const std::invalid_argument& e) {
      errors[static_cast<size_t>(r)] = e.what();
    }
  });
  for (const std::string& e : errors) {
    EXPECT_NE(e.find("RouteContext::rank_shares"), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace moebench
