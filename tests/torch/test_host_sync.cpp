// Note [Host synchronisation]: the MoE layer's own code reads nothing back from the device
// except the split sizes, and routing statistics wait until they are read. On the CPU a host
// read is invisible, but the ops that force one on a GPU are not: `item` (aten::
// _local_scalar_dense), `bincount` (reads min and max) and `nonzero`. This test counts them
// with a RecordFunction callback over a layer's forward and backward, with a router that makes
// none itself (its assignments are fixed tensors).
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/record_function.h>

#include "harness/comm/local_comm.h"
#include "harness/host_read.h"
#include "harness/moe/moe_layer.h"
#include "methods/method.h"
#include "methods/routing_util.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

thread_local std::map<std::string, int>* g_ops = nullptr;
thread_local int g_one_hot_depth = 0;

// aten::one_hot checks its input's range with min().item() and max().item() on the CPU only
// (its CUDA path skips the check to avoid the wait), so ops inside it are not counted.
std::unique_ptr<at::ObserverContext> CountOp(const at::RecordFunction& fn) {
  const std::string name = fn.name();
  if (g_ops != nullptr && g_one_hot_depth == 0) (*g_ops)[name] += 1;
  if (name == "aten::one_hot") ++g_one_hot_depth;
  return nullptr;
}

void EndOp(const at::RecordFunction& fn, at::ObserverContext*) {
  if (std::string(fn.name()) == "aten::one_hot") --g_one_hot_depth;
}

// Counts the ATen ops this thread runs while in scope.
class OpCounter {
 public:
  OpCounter() {
    g_ops = &ops_;
    handle_ = at::addThreadLocalCallback(
        at::RecordFunctionCallback(&CountOp, &EndOp).scopes({at::RecordScope::FUNCTION}));
  }
  ~OpCounter() {
    at::removeCallback(handle_);
    g_ops = nullptr;
  }
  int count(const std::string& op) const {
    auto it = ops_.find(op);
    return it == ops_.end() ? 0 : it->second;
  }
  int total() const {
    int n = 0;
    for (const auto& [op, c] : ops_) n += c;
    return n;
  }

 private:
  std::map<std::string, int> ops_;
  at::CallbackHandle handle_;
};

// Token t of a group goes to expert (t mod E), weight 0.5; tokens 0 and 1 are dropped. One aux
// loss, router probabilities for the entropy.
class FixedRouter : public Router {
 public:
  FixedRouter(int64_t num_experts, int64_t capacity) : e_(num_experts), capacity_(capacity) {}
  Routing Route(const at::Tensor& x, const at::Tensor& /*pad*/,
                const RouteContext& /*ctx*/) override {
    const int64_t t = x.size(0);
    Routing r;
    r.token = at::arange(2, t, x.options().dtype(at::kLong));
    r.expert = r.token.remainder(e_);
    r.slot = at::div(r.token, e_, "floor");
    r.weight = at::full({t - 2}, 0.5, x.options()) * (x.narrow(0, 2, t - 2).sum(1) * 0 + 1);
    r.capacity = capacity_;
    r.probs = at::full({t, e_}, 1.0 / static_cast<double>(e_), x.options());
    r.losses.push_back({"aux", x.sum() * 0 + 1, 0.01});
    r.choices = t;
    r.dropped = 2;
    return r;
  }

 private:
  int64_t e_, capacity_;
};

MoeLayer MakeLayer(Comm* comm, int64_t capacity) {
  at::manual_seed(4);
  MoeLayerOptions lo;
  lo.d_model = 8;
  lo.d_hidden = 16;
  lo.num_experts = 4;
  return MoeLayer(lo, std::make_shared<FixedRouter>(4, capacity), comm);
}

void ExpectNoHostReads(const OpCounter& ops) {
  EXPECT_GT(ops.total(), 10);  // the callback saw the layer's ops
  EXPECT_EQ(ops.count("aten::_local_scalar_dense"), 0);
  EXPECT_EQ(ops.count("aten::item"), 0);
  EXPECT_EQ(ops.count("aten::bincount"), 0);
  EXPECT_EQ(ops.count("aten::nonzero"), 0);
}

TEST(HostSync, TheCounterSeesTheOpsThatReadTheHost) {
  OpCounter ops;
  (void)at::ones({3}).sum().item<float>();
  (void)at::bincount(at::arange(3), {}, 4);
  (void)at::ones({3}).nonzero();
  (void)at::one_hot(at::arange(3), 4);  // its CPU-only range check is not counted
  EXPECT_EQ(ops.count("aten::one_hot"), 1);
  EXPECT_EQ(ops.count("aten::_local_scalar_dense"), 1);
  EXPECT_EQ(ops.count("aten::bincount"), 1);
  EXPECT_EQ(ops.count("aten::nonzero"), 1);
}

TEST(HostSync, LayerForwardAndBackwardReadNothingButTheSplitSizes) {
  for (int workers : {1, 2}) {
    for (int64_t capacity : {int64_t{0}, int64_t{16}}) {  // dynamic and fixed capacity
      SCOPED_TRACE("workers " + std::to_string(workers) + " capacity " + std::to_string(capacity));
      LocalComm comm(Topology{workers, 1});
      MoeLayer layer = MakeLayer(&comm, capacity);
      const at::Tensor x = at::randn({24, 8}).requires_grad_(true);
      const at::Tensor pad = at::ones({24}, at::kBool);
      RouteContext ctx;
      ctx.training = true;
      {
        OpCounter ops;
        at::Tensor y = layer->forward(x, pad, ctx);
        (y.sum() + layer->aux_loss()).backward();
        ExpectNoHostReads(ops);
      }
      // The statistics are right once read.
      const MoeLayerStats& s = layer->last_stats();
      EXPECT_EQ(s.real_tokens, 24);
      EXPECT_NEAR(s.entropy, std::log(4.0), 1e-6);  // uniform probabilities over 4 experts
      ASSERT_EQ(s.losses.count("aux"), 1u);
      EXPECT_DOUBLE_EQ(s.losses.at("aux"), 1.0);  // each group's 1, averaged over groups
      int64_t kept = 0;
      for (int64_t n : s.tokens_per_expert) kept += n;
      EXPECT_EQ(kept, workers * (24 / workers - 2));
      // Dynamic capacity: the most rows any expert got in a group.
      const int64_t per_group = 24 / workers - 2;
      const int64_t expected_cap = capacity > 0 ? capacity : (per_group + 3) / 4;
      EXPECT_EQ(layer->last_assignments().capacity, std::max<int64_t>(expected_cap * workers, 1));
    }
  }
}

// The registry's routers in the layer, with the batch's lengths known on the host (as the
// trainer gives them): one host read per forward, the layer's (the split sizes, with the
// routers' kept/dropped counts, which they leave on the device; expert choice's real picks are
// each expert's first min(k, real tokens), no `nonzero`); no item, bincount or nonzero.
// Without the lengths each group also reads its real-token count. Routing, output and
// statistics are the same either way.
TEST(HostSync, RoutersWithHostLengthsLeaveTheLayerOneRead) {
  const testing::PaddedBatch batch;
  const at::Tensor& pad = batch.pad;
  for (const std::string method : {"switch", "gshard", "expert_choice"}) {
    for (int workers : {1, 2}) {
      SCOPED_TRACE(method + " workers " + std::to_string(workers));
      LocalComm comm(Topology{workers, 1});
      MoeLayer known = testing::MakeMethodLayer(method, &comm);
      MoeLayer counted = testing::MakeMethodLayer(method, &comm);
      at::manual_seed(2);
      const at::Tensor x = at::randn({batch.t, 8});
      const RouteContext ctx = batch.Context(false);
      const RouteContext with_lengths = batch.Context(true);

      const int64_t r0 = HostReadCount();
      at::Tensor y_known;
      {
        OpCounter ops;
        y_known = known->forward(x, pad, with_lengths);
        EXPECT_EQ(ops.count("aten::_local_scalar_dense"), 0);
        EXPECT_EQ(ops.count("aten::bincount"), 0);
        EXPECT_EQ(ops.count("aten::nonzero"), 0);
      }
      EXPECT_EQ(HostReadCount() - r0, 1);
      const int64_t r1 = HostReadCount();
      const at::Tensor y_counted = counted->forward(x, pad, ctx);
      EXPECT_EQ(HostReadCount() - r1, workers + 1);

      EXPECT_TRUE(at::equal(y_known, y_counted));
      EXPECT_TRUE(at::equal(known->last_assignments().token, counted->last_assignments().token));
      EXPECT_TRUE(at::equal(known->last_assignments().expert, counted->last_assignments().expert));
      EXPECT_TRUE(at::equal(known->last_assignments().slot, counted->last_assignments().slot));
      EXPECT_EQ(known->last_assignments().capacity, counted->last_assignments().capacity);
      // Padding never gets an assignment.
      EXPECT_TRUE(pad.index_select(0, known->last_assignments().token).all().item<bool>());
      EXPECT_EQ(known->last_stats().real_tokens, 31);  // the sum of the lengths
      EXPECT_EQ(counted->last_stats().real_tokens, 31);
      EXPECT_EQ(known->last_stats().choices, counted->last_stats().choices);
      EXPECT_EQ(known->last_stats().dropped, counted->last_stats().dropped);
      EXPECT_DOUBLE_EQ(known->last_stats().entropy, counted->last_stats().entropy);
    }
  }
}

// Note [Static-shape path]: the static path reads nothing, not even the split sizes: forward
// and backward of the capacity routers over 1, 2 and 4 workers (2 nodes) make no counted read
// and none of the ops that wait for a GPU. The statistics then take one read, and the flush of
// the tallied bytes and FLOPs one more.
TEST(HostSync, TheStaticPathReadsNothing) {
  const testing::PaddedBatch batch;
  // gating_dropout: with p = 1 every step skips the exchange (the coin and the remap run).
  const std::vector<std::pair<std::string, std::map<std::string, std::string>>> methods = {
      {"switch", {}},        {"gshard", {}},         {"topk", {}},
      {"expert_choice", {}}, {"gating_dropout", {}}, {"gating_dropout", {{"p", "1"}}}};
  for (const auto& [method, knobs] : methods) {
    for (const Topology& topo : {Topology{1, 1}, Topology{2, 1}, Topology{4, 2}}) {
      SCOPED_TRACE(method + (knobs.empty() ? "" : " p=1") + " workers " +
                   std::to_string(topo.workers));
      LocalComm comm(topo);
      MoeLayer layer = testing::MakeMethodLayer(method, &comm, knobs, /*static_shapes=*/true, 8);
      const at::Tensor x = at::randn({batch.t, 8}).requires_grad_(true);
      const int64_t r0 = HostReadCount();
      {
        OpCounter ops;
        at::Tensor y = layer->forward(x, batch.pad, batch.Context(true));
        (y.sum() + layer->aux_loss()).backward();
        ExpectNoHostReads(ops);
      }
      EXPECT_EQ(HostReadCount() - r0, 0);
      EXPECT_EQ(layer->last_stats().real_tokens, 31);
      EXPECT_EQ(layer->last_stats().exchange_skipped, !knobs.empty());
      EXPECT_EQ(HostReadCount() - r0, 1);
      layer->FlushDeviceTally();
      EXPECT_EQ(HostReadCount() - r0, 2);
      EXPECT_GT(layer->expert_flops(), 0.0);
    }
  }
}

// On ranks too: 2 Gloo ranks (threads; HostReadCount counts each thread's reads) run a static
// forward and backward with no counted read (the split sizes come from the batch's shares, not
// from a collective read back), and reading the statistics afterwards is the one read; the
// dynamic path on the same ranks reads its split sizes.
TEST(HostSync, TheStaticPathReadsNothingOnRanks) {
  if (!C10dHasGloo()) GTEST_SKIP() << "this build has no Gloo";
  const testing::PaddedBatch batch;
  at::manual_seed(1);
  const at::Tensor x = at::randn({batch.t, 8});
  for (const std::string method : {"switch", "gshard"}) {
    for (const bool static_shapes : {true, false}) {
      SCOPED_TRACE(method + (static_shapes ? " static" : " dynamic"));
      std::mutex build;
      std::vector<int64_t> reads(2, -1), stats_reads(2, -1);
      testing::OnRanks(Topology{2, 1}, [&](int r, Comm& comm) {
        MoeLayer layer{nullptr};
        {
          std::lock_guard<std::mutex> lock(build);
          layer = testing::MakeMethodLayer(method, &comm, {}, static_shapes, 8);
        }
        layer->KeepExperts(4 * r, 4);
        const testing::RankPart part = testing::RankPartOf(batch, r, 2);
        const at::Tensor xr = x.narrow(0, part.first, part.tokens).clone().requires_grad_(true);
        const int64_t r0 = HostReadCount();
        at::Tensor y = layer->forward(xr, batch.pad.narrow(0, part.first, part.tokens), part.ctx);
        (y.sum() + layer->aux_loss()).backward();
        const int64_t r1 = HostReadCount();
        reads[static_cast<size_t>(r)] = r1 - r0;
        EXPECT_GT(layer->last_stats().real_tokens, 0);
        stats_reads[static_cast<size_t>(r)] = HostReadCount() - r1;
      });
      for (int r = 0; r < 2; ++r) {
        if (static_shapes) {
          EXPECT_EQ(reads[r], 0) << "rank " << r;
          EXPECT_EQ(stats_reads[r], 1) << "rank " << r;  // the statistics' one read
        } else {
          EXPECT_GE(reads[r], 1) << "rank " << r;  // the split sizes
        }
      }
    }
  }
}

// RouteContext::statistics off (the trainer's steps that log nothing): the layer launches none
// of the router-entropy or node-copy kernels, routes and computes the same output, and counts
// the same rows and drops; on both paths, over two nodes.
TEST(HostSync, StatisticsOffRunsNoStatisticKernels) {
  const testing::PaddedBatch batch;
  for (bool static_shapes : {false, true}) {
    SCOPED_TRACE(static_shapes ? "static" : "dynamic");
    LocalComm comm(Topology{4, 2});
    MoeLayer layer = testing::MakeMethodLayer("gshard", &comm, {}, static_shapes, 8);
    const at::Tensor x = at::randn({batch.t, 8});
    RouteContext with = batch.Context(true), without = with;
    without.statistics = false;
    std::map<std::string, int> ops_with, ops_without;
    at::Tensor y_with, y_without;
    {
      OpCounter ops;
      y_with = layer->forward(x, batch.pad, with);
      ops_with = {{"log", ops.count("aten::log")}, {"total", ops.total()}};
    }
    const MoeLayerStats s_with = layer->last_stats();
    {
      OpCounter ops;
      y_without = layer->forward(x, batch.pad, without);
      ops_without = {{"log", ops.count("aten::log")}, {"total", ops.total()}};
    }
    const MoeLayerStats& s_without = layer->last_stats();
    EXPECT_GT(ops_with["log"], 0);  // the entropy
    EXPECT_EQ(ops_without["log"], 0);
    EXPECT_LT(ops_without["total"], ops_with["total"]);
    EXPECT_TRUE(at::equal(y_with, y_without));
    EXPECT_TRUE(s_with.statistics);
    EXPECT_FALSE(s_without.statistics);
    EXPECT_GT(s_with.entropy, 0.0);
    EXPECT_EQ(s_without.entropy, 0.0);
    EXPECT_TRUE(s_with.node_counts);
    EXPECT_FALSE(s_without.node_counts);
    EXPECT_GT(s_with.other_node_copies, 0);
    EXPECT_EQ(s_without.tokens_per_expert, s_with.tokens_per_expert);
    EXPECT_EQ(s_without.dropped, s_with.dropped);
    EXPECT_EQ(s_without.real_tokens, s_with.real_tokens);
    EXPECT_EQ(s_without.losses, s_with.losses);
  }
}

// The base router with RouteContext::defer_counts cleared: it reads its kept count itself.
class EagerRouter : public Router {
 public:
  explicit EagerRouter(std::shared_ptr<Router> base) : base_(register_module("base", base)) {}
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override {
    RouteContext eager = ctx;
    eager.defer_counts = false;
    return base_->Route(x, pad, eager);
  }

 private:
  std::shared_ptr<Router> base_;
};

// Deferred counts (Routing::deferred) change no result: every method that defers, in the layer,
// against the same router reading its counts itself (one read per group more): the same
// assignments, output, gradients and statistics, with capacity drops and padding.
TEST(HostSync, DeferredCountsGiveTheSameLayer) {
  const testing::PaddedBatch batch;
  for (const std::string method :
       {"switch", "gshard", "thor", "smoe_dropout", "gating_dropout", "uniform"}) {
    for (int workers : {1, 2}) {
      SCOPED_TRACE(method + " workers " + std::to_string(workers));
      LocalComm comm(Topology{workers, 1});
      // Capacity factor 0.5 (where the method has one): some choices are dropped.
      std::map<std::string, std::string> knobs;
      if (method == "switch" || method == "gshard" || method == "gating_dropout") {
        knobs["capacity_factor"] = "0.5";
        knobs["min_capacity"] = "1";
      }
      if (method == "gating_dropout") knobs["p"] = "0";
      MoeLayer deferred = testing::MakeMethodLayer(method, &comm, knobs);
      at::manual_seed(9);
      MoeLayerOptions lo;
      lo.d_model = 8;
      lo.d_hidden = 16;
      lo.num_experts = 4;
      MoeLayer eager(lo,
                     std::make_shared<EagerRouter>(
                         MakeMethod(method, knobs)->MakeRouter({0, false, 8, 16, 4})),
                     &comm);
      at::manual_seed(2);
      const at::Tensor x = at::randn({batch.t, 8}).requires_grad_(true);
      const at::Tensor x2 = x.detach().clone().requires_grad_(true);
      const RouteContext ctx = batch.Context(true);
      const int64_t r0 = HostReadCount();
      const at::Tensor y = deferred->forward(x, batch.pad, ctx);
      EXPECT_EQ(HostReadCount() - r0, 1);
      const int64_t r1 = HostReadCount();
      const at::Tensor y2 = eager->forward(x2, batch.pad, ctx);
      EXPECT_EQ(HostReadCount() - r1, workers + 1);
      EXPECT_TRUE(at::equal(y, y2));
      const LayerAssignments& a = deferred->last_assignments();
      const LayerAssignments& b = eager->last_assignments();
      EXPECT_TRUE(at::equal(a.token, b.token));
      EXPECT_TRUE(at::equal(a.expert, b.expert));
      EXPECT_TRUE(at::equal(a.slot, b.slot));
      EXPECT_TRUE(at::equal(a.weight, b.weight));
      EXPECT_EQ(a.capacity, b.capacity);
      (y.square().sum() + deferred->aux_loss()).backward();
      (y2.square().sum() + eager->aux_loss()).backward();
      EXPECT_TRUE(at::equal(x.grad(), x2.grad()));
      const MoeLayerStats& s = deferred->last_stats();
      const MoeLayerStats& s2 = eager->last_stats();
      EXPECT_EQ(s.choices, s2.choices);
      EXPECT_EQ(s.dropped, s2.dropped);
      EXPECT_EQ(s.tokens_per_expert, s2.tokens_per_expert);
      if (knobs.count("capacity_factor")) {
        EXPECT_GT(s.dropped, 0);
      }
      EXPECT_GT(s.choices, 0);
    }
  }
}

// ResolveDeferred makes a deferred Routing the undeferred one (lists, choices, dropped).
TEST(HostSync, ResolveDeferredGivesTheUndeferredRouting) {
  at::manual_seed(5);
  const at::Tensor experts = at::randint(4, {20, 2}, at::kLong);
  const at::Tensor weights = at::rand({20, 2});
  at::Tensor active = at::ones({20, 2}, at::kBool);
  active.index_put_({at::indexing::Slice(15, 20)}, false);  // 5 padding tokens
  const Routing eager = AssignChoices(experts, weights, active, 4, /*capacity=*/3);
  Routing deferred = AssignChoices(experts, weights, active, 4, 3, /*defer=*/true);
  ASSERT_TRUE(deferred.deferred.defined());
  EXPECT_EQ(deferred.token.size(0), 40);  // every choice, kept first
  const int64_t r0 = HostReadCount();
  ResolveDeferred(deferred);
  EXPECT_EQ(HostReadCount() - r0, 1);
  EXPECT_FALSE(deferred.deferred.defined());
  EXPECT_GT(eager.dropped, 0);
  EXPECT_EQ(deferred.choices, eager.choices);
  EXPECT_EQ(deferred.dropped, eager.dropped);
  EXPECT_TRUE(at::equal(deferred.token, eager.token));
  EXPECT_TRUE(at::equal(deferred.expert, eager.expert));
  EXPECT_TRUE(at::equal(deferred.slot, eager.slot));
  EXPECT_TRUE(at::equal(deferred.weight, eager.weight));
}

}  // namespace
}  // namespace moebench
