// Helpers shared by the torch tests.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "harness/comm/c10d_comm.h"
#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench::testing {

// A router that returns hand-built assignments, one Routing per group (worker).
class FixedRouter : public Router {
 public:
  explicit FixedRouter(std::vector<Routing> per_group) : per_group_(std::move(per_group)) {}
  Routing Route(const at::Tensor&, const at::Tensor&, const RouteContext& ctx) override {
    return per_group_.at(ctx.group);
  }

 private:
  std::vector<Routing> per_group_;
};

// Assignments of tokens 0..n-1 of a group to the given experts, slots in order, weight 1.
inline Routing MakeRouting(const std::vector<int64_t>& experts, int64_t capacity) {
  Routing r;
  const int64_t n = static_cast<int64_t>(experts.size());
  r.token = at::arange(n, at::kLong);
  r.expert = at::tensor(experts, at::kLong);
  std::vector<int64_t> slots(n);
  std::vector<int64_t> used(64, 0);
  for (int64_t i = 0; i < n; ++i) slots[i] = used[experts[i]]++;
  r.slot = at::tensor(slots, at::kLong);
  r.weight = at::ones({n}, at::kFloat);
  r.capacity = capacity;
  r.choices = n;
  return r;
}

// 6 sentences of 8 positions with these lengths, flattened ([48] pad: true = real token), and a
// training context for them (seed 3, step 1), with the lengths known on the host or not.
struct PaddedBatch {
  std::vector<int64_t> lengths = {6, 3, 8, 1, 8, 5};
  int64_t s = 8, b = 6, t = 48;
  at::Tensor pad;
  PaddedBatch() : PaddedBatch({6, 3, 8, 1, 8, 5}) {}
  // Sentences of these lengths (at most s = 8 each), one per row.
  explicit PaddedBatch(std::vector<int64_t> lens) : lengths(std::move(lens)) {
    b = static_cast<int64_t>(lengths.size());
    t = b * s;
    pad = at::zeros({b, s}, at::kBool);
    for (int64_t i = 0; i < b; ++i) pad[i].narrow(0, 0, lengths[i]).fill_(true);
    pad = pad.reshape({-1});
  }
  RouteContext Context(bool with_lengths) const {
    RouteContext ctx;
    ctx.training = true;
    ctx.seed = 3;
    ctx.step = 1;
    ctx.total_tokens = t;
    ctx.tokens_per_sentence = s;
    if (with_lengths) ctx.src_lengths = std::make_shared<const std::vector<int64_t>>(lengths);
    return ctx;
  }
};

// A MoE layer (d 8, hidden 16, `experts` experts, seeded) with `method`'s first encoder-layer
// router; static_shapes: the static-shape training path (MoeLayerOptions).
inline MoeLayer MakeMethodLayer(const std::string& method, Comm* comm,
                                const std::map<std::string, std::string>& knobs = {},
                                bool static_shapes = false, int64_t experts = 4) {
  at::manual_seed(9);
  MoeLayerOptions lo;
  lo.d_model = 8;
  lo.d_hidden = 16;
  lo.num_experts = experts;
  lo.static_shapes = static_shapes;
  return MoeLayer(lo, MakeMethod(method, knobs)->MakeRouter({0, false, 8, 16, experts}), comm);
}

inline bool AllClose(const at::Tensor& a, const at::Tensor& b, double rtol = 1e-5,
                     double atol = 1e-5) {
  return a.sizes() == b.sizes() && at::allclose(a, b, rtol, atol);
}

// A routing context in training or evaluation with seed 3 (the routers' seeded draws).
inline RouteContext SeededContext(bool training) {
  RouteContext ctx;
  ctx.training = training;
  ctx.seed = 3;
  return ctx;
}

// The expert of each of t tokens, from a Routing with one assignment per routed token (-1:
// none).
inline std::vector<int64_t> ExpertOfToken(const Routing& r, int64_t t) {
  std::vector<int64_t> out(t, -1);
  for (int64_t i = 0; i < r.token.size(0); ++i) {
    out[r.token[i].item<int64_t>()] = r.expert[i].item<int64_t>();
  }
  return out;
}

// A fresh file for a group's rank 0 to pass its store's port to the others.
inline std::string RankPortFile() {
  static int calls = 0;
  return "/tmp/moebench-test-static-ranks." + std::to_string(getpid()) + "." +
         std::to_string(++calls);
}

// Rank r's options in a group of topo.workers ranks on this host (Gloo; NCCL with `nccl`).
inline C10dOptions RankOptions(const Topology& topo, int r, const std::string& port_file,
                               bool nccl) {
  C10dOptions o;
  o.env.rank = r;
  o.env.world_size = topo.workers;
  o.env.local_rank = r;
  o.env.local_world_size = topo.workers;
  o.env.master_addr = "127.0.0.1";
  o.env.master_port = 0;
  o.env.port_file = port_file;
  o.topology = topo;
  o.timeout_s = 60;
  o.cuda = nccl;
  return o;
}

// A process group of one rank (Gloo; NCCL on the current GPU with `nccl`): the rank code paths
// without a second process.
inline std::unique_ptr<Comm> OneRankComm(bool nccl = false) {
  const std::string port_file = RankPortFile();
  auto comm = std::make_unique<C10dComm>(RankOptions(Topology{1, 1}, 0, port_file, nccl));
  std::remove(port_file.c_str());
  return comm;
}

// W ranks of a process group (Gloo; NCCL on the current GPU with `nccl`), one thread each, rank
// 0 serving the store on a free port that it passes to the others through a file (as under
// mpirun on one host). Returns whether every rank finished.
inline bool OnRanks(const Topology& topo, const std::function<void(int, Comm&)>& fn,
                    bool nccl = false) {
  const int w = topo.workers;
  const std::string port_file = RankPortFile();
  std::vector<std::string> errors(static_cast<size_t>(w));
  std::vector<std::thread> threads;
  for (int r = 0; r < w; ++r) {
    threads.emplace_back([&, r] {
      try {
        C10dComm comm(RankOptions(topo, r, port_file, nccl));
        fn(r, comm);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  std::remove(port_file.c_str());
  bool ok = true;
  for (int r = 0; r < w; ++r) {
    if (!errors[static_cast<size_t>(r)].empty()) {
      ADD_FAILURE() << "rank " << r << ": " << errors[static_cast<size_t>(r)];
      ok = false;
    }
  }
  return ok;
}

// Every rank's share of a PaddedBatch split by sentences as RankSlice splits a batch.
inline std::shared_ptr<const std::vector<RankShare>> RankSharesOf(const PaddedBatch& b, int w) {
  std::vector<RankShare> shares(static_cast<size_t>(w));
  for (int r = 0; r < w; ++r) {
    for (int64_t i = b.b * r / w; i < b.b * (r + 1) / w; ++i) {
      shares[static_cast<size_t>(r)].src_lengths.push_back(b.lengths[static_cast<size_t>(i)]);
    }
    shares[static_cast<size_t>(r)].src_len = b.s;
  }
  return std::make_shared<const std::vector<RankShare>>(std::move(shares));
}

// Rank r's part of a PaddedBatch split over w ranks by sentences (as RankSlice cuts a batch):
// its rows of the flattened batch, [first, first + tokens), and its training context, which
// carries its own lengths and every rank's share.
struct RankPart {
  int64_t first = 0, tokens = 0;
  RouteContext ctx;
};
inline RankPart RankPartOf(const PaddedBatch& b, int r, int w) {
  const auto all = RankSharesOf(b, w);
  RankPart p;
  p.first = b.b * r / w * b.s;
  p.tokens = (b.b * (r + 1) / w - b.b * r / w) * b.s;
  p.ctx = b.Context(false);
  p.ctx.total_tokens = p.tokens;
  p.ctx.src_lengths =
      std::make_shared<const std::vector<int64_t>>((*all)[static_cast<size_t>(r)].src_lengths);
  p.ctx.rank_shares = all;
  return p;
}

// A process group of one rank (Gloo on the CPU, NCCL on a GPU `device`) runs `method`'s layer
// as one process does: the dynamic and the static path on the rank, on `device`, give the
// output, input and parameter gradients and routing statistics of the dynamic path on one
// process on the CPU (LocalComm); the static path counts the bytes and calls the dynamic one
// counts on the rank (the rank's exchange is a real one-rank all-to-all, so its calls and wire
// bytes are not the one process's, which moves nothing).
inline void ExpectOneRankMatchesOneProcess(const std::string& method, const at::Device& device) {
  const PaddedBatch b;
  LocalComm local(Topology{1, 1});
  const std::map<std::string, std::string> knobs =
      method == "switch" ? std::map<std::string, std::string>{{"jitter", "0"}}
                         : std::map<std::string, std::string>{};
  MoeLayer cpu = MakeMethodLayer(method, &local, knobs);
  at::manual_seed(2);
  const at::Tensor x = at::randn({b.t, 8}).requires_grad_(true);
  const at::Tensor y = cpu->forward(x, b.pad, b.Context(true));
  (y.sum() + cpu->aux_loss()).backward();
  std::map<std::pair<int, std::string>, CommCounters> counted[2];
  OnRanks(
      Topology{1, 1},
      [&](int, Comm& comm) {
        for (const bool static_shapes : {false, true}) {
          SCOPED_TRACE(method + (static_shapes ? ", static" : ", dynamic") + " on one rank");
          MoeLayer layer = MakeMethodLayer(method, &comm, knobs, static_shapes);
          layer->to(device);
          const at::Tensor xd = x.detach().to(device).requires_grad_(true);
          const at::Tensor yd = layer->forward(xd, b.pad.to(device), RankPartOf(b, 0, 1).ctx);
          (yd.sum() + layer->aux_loss()).backward();
          EXPECT_TRUE(at::allclose(yd.cpu(), y, 1e-4, 1e-5));
          EXPECT_TRUE(at::allclose(xd.grad().cpu(), x.grad(), 1e-4, 1e-5));
          const auto grads = layer->named_parameters();
          for (const auto& p : cpu->named_parameters()) {
            if (!p.value().grad().defined()) continue;
            ASSERT_TRUE(grads[p.key()].grad().defined()) << p.key();
            EXPECT_TRUE(at::allclose(grads[p.key()].grad().cpu(), p.value().grad(), 1e-4, 1e-5))
                << p.key();
          }
          EXPECT_EQ(layer->last_stats().tokens_per_expert, cpu->last_stats().tokens_per_expert);
          EXPECT_EQ(layer->last_stats().dropped, cpu->last_stats().dropped);
          EXPECT_EQ(layer->last_stats().rows, cpu->last_stats().rows);
          layer->FlushDeviceTally();
          EXPECT_DOUBLE_EQ(layer->expert_flops(), cpu->expert_flops());
          counted[static_shapes ? 1 : 0] = comm.meter().Drain();
        }
      },
      device.is_cuda());
  counted[0].erase({0, "counts"});  // the dynamic path's split sizes: the static one has none
  ASSERT_EQ(counted[1].size(), counted[0].size());
  ASSERT_EQ(counted[0].size(), 2u);  // fwd and bwd
  for (const auto& [key, d] : counted[0]) {
    SCOPED_TRACE(key.second);
    ASSERT_EQ(counted[1].count(key), 1u);
    EXPECT_EQ(counted[1].at(key).calls, d.calls);
    EXPECT_EQ(counted[1].at(key).logical, d.logical);
    EXPECT_EQ(counted[1].at(key).wire, d.wire);
    EXPECT_EQ(d.calls, 2);       // the one-rank all-to-alls ran: dispatch and combine
    EXPECT_GT(d.logical[0], 0);  // all rows stay on the worker
  }
}

// Two layers' statistics of the same routing (two paths, or two capacities) agree: every count,
// the entropy and the losses.
inline void ExpectSameStats(const MoeLayerStats& d, const MoeLayerStats& s) {
  EXPECT_EQ(s.tokens_per_expert, d.tokens_per_expert);
  EXPECT_EQ(s.real_tokens, d.real_tokens);
  EXPECT_EQ(s.choices, d.choices);
  EXPECT_EQ(s.dropped, d.dropped);
  EXPECT_EQ(s.rows, d.rows);
  EXPECT_EQ(s.rows_cross_worker, d.rows_cross_worker);
  EXPECT_EQ(s.node_counts, d.node_counts);
  EXPECT_EQ(s.other_node_copies, d.other_node_copies);
  EXPECT_EQ(s.nodes_per_token_max, d.nodes_per_token_max);
  EXPECT_NEAR(s.entropy, d.entropy, 1e-9);
  EXPECT_EQ(s.losses.size(), d.losses.size());
  for (const auto& [name, v] : d.losses) EXPECT_NEAR(s.losses.at(name), v, 1e-9) << name;
  EXPECT_EQ(s.exchange_skipped, d.exchange_skipped);
  EXPECT_EQ(s.experts_skipped, d.experts_skipped);
}

}  // namespace moebench::testing
