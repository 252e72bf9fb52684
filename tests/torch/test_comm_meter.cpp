// The byte meter against hand-computed counts for hand-built routings.
#include <gtest/gtest.h>

#include <memory>

#include "harness/comm/local_comm.h"
#include "harness/moe/moe_layer.h"
#include "tests/torch/test_util.h"

namespace moebench {
namespace {

using testing::FixedRouter;
using testing::MakeRouting;

constexpr int64_t kD = 4;              // d_model
constexpr int64_t kRowBytes = kD * 4;  // fp32 rows: 16 bytes

struct Counted {
  CommCounters fwd, bwd;
};

// Runs one forward + backward of a layer whose router returns `groups`, and returns the meter.
Counted RunLayer(const Topology& topo, int64_t e, std::vector<Routing> groups,
                 const std::string& exchange = "padded") {
  LocalComm comm(topo);
  MoeLayerOptions opt;
  opt.d_model = kD;
  opt.d_hidden = 8;
  opt.num_experts = e;
  opt.exchange = exchange;
  int64_t t = 0;
  for (auto& g : groups) {
    t += g.token.size(0);
    g.weight = g.weight.clone().requires_grad_(true);
  }
  MoeLayer layer(opt, std::make_shared<FixedRouter>(groups), &comm);
  at::Tensor x = at::randn({t, kD}).requires_grad_(true);
  RouteContext ctx;
  ctx.training = true;
  layer->forward(x, at::Tensor(), ctx).sum().backward();
  auto drained = comm.meter().Drain();
  return {drained[{0, "fwd"}], drained[{0, "bwd"}]};
}

TEST(CommMeter, OneWorkerCountsOnlySameWorkerBytesAndNoCalls) {
  // 5 tokens to experts 0,1,1,0,1: every row stays; dispatch + combine = 2 * 5 rows.
  Counted c = RunLayer(Topology{1, 1}, 2, {MakeRouting({0, 1, 1, 0, 1}, 3)});
  EXPECT_EQ(c.fwd.calls, 0);
  EXPECT_EQ(c.fwd.logical[0], 2 * 5 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[1] + c.fwd.logical[2], 0);
  EXPECT_EQ(c.fwd.wire[0] + c.fwd.wire[1] + c.fwd.wire[2], 0);
  EXPECT_EQ(c.bwd.logical[0], 2 * 5 * kRowBytes);
}

// W = 2, E = 4 (2 per worker), 4 tokens per worker.
// worker 0 -> experts 0,2,3,1 -> workers 0,1,1,0: 2 rows stay, 2 rows to worker 1
// worker 1 -> experts 0,0,3,2 -> workers 0,0,1,1: 2 rows to worker 0, 2 stay
std::vector<Routing> TwoWorkerRouting() {
  return {MakeRouting({0, 2, 3, 1}, 3), MakeRouting({0, 0, 3, 2}, 3)};
}

TEST(CommMeter, TwoWorkersOnTwoNodes) {
  Counted c = RunLayer(Topology{2, 1}, 4, TwoWorkerRouting());
  EXPECT_EQ(c.fwd.calls, 2);  // dispatch + combine
  EXPECT_EQ(c.bwd.calls, 2);
  // Per exchange: 4 rows stay, 4 rows cross; two exchanges per direction.
  EXPECT_EQ(c.fwd.logical[0], 2 * 4 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[1], 0);
  EXPECT_EQ(c.fwd.logical[2], 2 * 4 * kRowBytes);
  // Padded: each worker sends the other a [E_loc = 2, C = 3, d] buffer: 2*3*16 = 96 bytes,
  // two such pairs per exchange, two exchanges.
  EXPECT_EQ(c.fwd.wire[2], 2 * 2 * 96);
  EXPECT_EQ(c.fwd.wire[0] + c.fwd.wire[1], 0);
  EXPECT_EQ(c.bwd.logical[2], c.fwd.logical[2]);
  EXPECT_EQ(c.bwd.wire[2], c.fwd.wire[2]);
}

TEST(CommMeter, TwoWorkersOnOneNode) {
  Counted c = RunLayer(Topology{2, 2}, 4, TwoWorkerRouting());
  EXPECT_EQ(c.fwd.logical[0], 2 * 4 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[1], 2 * 4 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[2], 0);
  EXPECT_EQ(c.fwd.wire[1], 2 * 2 * 96);
}

// W = 4 on 2 nodes ({0,1}, {2,3}), E = 4 (1 per worker), 2 tokens per worker:
// w0 -> 0,1 (same worker, same node); w1 -> 1,2 (same worker, other node);
// w2 -> 3,3 (same node x2);          w3 -> 0,2 (other node, same node).
// Rows per exchange: same worker 2, same node 4, other node 2.
std::vector<Routing> FourWorkerRouting() {
  return {MakeRouting({0, 1}, 2), MakeRouting({1, 2}, 2), MakeRouting({3, 3}, 2),
          MakeRouting({0, 2}, 2)};
}

TEST(CommMeter, FourWorkersTwoNodesPadded) {
  Counted c = RunLayer(Topology{4, 2}, 4, FourWorkerRouting());
  EXPECT_EQ(c.fwd.logical[0], 2 * 2 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[1], 2 * 4 * kRowBytes);
  EXPECT_EQ(c.fwd.logical[2], 2 * 2 * kRowBytes);
  // Padded: every worker sends each of the 3 others a [1, C = 2, d] buffer of 32 bytes,
  // to 1 same-node peer and 2 other-node peers: per exchange 4*32 same node, 8*32 other.
  EXPECT_EQ(c.fwd.wire[1], 2 * 4 * 32);
  EXPECT_EQ(c.fwd.wire[2], 2 * 8 * 32);
  EXPECT_EQ(c.bwd.wire[2], 2 * 8 * 32);
}

TEST(CommMeter, FourWorkersTwoNodesCompact) {
  Counted c = RunLayer(Topology{4, 2}, 4, FourWorkerRouting(), "compact");
  // Compact: the routed rows plus one 8-byte count per (src != dst) pair.
  // Same-node pairs (0,1),(1,0),(2,3),(3,2) carry 1,0,2,1 rows in the dispatch and the
  // reverse in the combine: 4 rows * 16 + 4 counts * 8 = 96 bytes per exchange.
  EXPECT_EQ(c.fwd.wire[1], 2 * 96);
  // Other-node pairs: 8 pairs, 2 rows in total: 2 * 16 + 8 * 8 = 96 bytes per exchange.
  EXPECT_EQ(c.fwd.wire[2], 2 * 96);
  EXPECT_EQ(c.fwd.logical[2], 2 * 2 * kRowBytes);
}

// Two rows per token: tokens 0 and 1 of a group go to experts[0], experts[1] and experts[2],
// experts[3] (slots in order, weight 1).
Routing TwoRowsPerToken(const std::vector<int64_t>& experts) {
  Routing r = MakeRouting(experts, 4);
  r.token = at::tensor({0, 0, 1, 1}, at::kLong);
  return r;
}

// Runs one forward of a layer (W = 4 in 2 nodes of 2, E = 4: expert j on worker j) whose router
// returns `groups` (2 tokens per worker) and returns its statistics.
MoeLayerStats NodeStats(std::vector<Routing> groups) {
  LocalComm comm(Topology{4, 2});
  MoeLayerOptions opt;
  opt.d_model = kD;
  opt.d_hidden = 8;
  opt.num_experts = 4;
  MoeLayer layer(opt, std::make_shared<FixedRouter>(groups), &comm);
  RouteContext ctx;
  ctx.training = true;
  layer->forward(at::randn({8, kD}), at::Tensor(), ctx);
  return layer->last_stats();
}

TEST(CommMeter, OtherNodeCopiesCountEachTokensOtherNodesOnce) {
  // Nodes {0, 1} and {2, 3}. Per token: its experts' nodes; other-node copies; nodes reached.
  //   w0 (node 0): t0 -> 2, 3 (node 1 twice): 1 copy, 1 node; t1 -> 0, 1: 0, 1
  //   w1 (node 0): t0 -> 0, 2: 1 copy, 2 nodes;              t1 -> 1, 0: 0, 1
  //   w2 (node 1): t0 -> 0, 1: 1 copy, 1 node;               t1 -> 2, 3: 0, 1
  //   w3 (node 1): t0 -> 2, 0: 1 copy, 2 nodes;              t1 -> 1, 3: 1, 2
  // 5 copies over 8 tokens (the meter's per-row count: 2 + 1 + 2 + 2 = 7 rows cross nodes);
  // at most 2 nodes per token.
  const MoeLayerStats s = NodeStats({TwoRowsPerToken({2, 3, 0, 1}), TwoRowsPerToken({0, 2, 1, 0}),
                                     TwoRowsPerToken({0, 1, 2, 3}), TwoRowsPerToken({2, 0, 1, 3})});
  EXPECT_TRUE(s.node_counts);
  EXPECT_EQ(s.other_node_copies, 5);
  EXPECT_EQ(s.nodes_per_token_max, 2);
  EXPECT_EQ(s.real_tokens, 8);
  // Every token's two rows on one node (as node-limited routing with M = 1 sends them): at most
  // one node per token; copies = tokens whose node is not their own: w0 t0, w2 t0, w3 t1.
  const MoeLayerStats one =
      NodeStats({TwoRowsPerToken({2, 3, 0, 1}), TwoRowsPerToken({0, 1, 1, 0}),
                 TwoRowsPerToken({0, 1, 2, 3}), TwoRowsPerToken({3, 2, 1, 0})});
  EXPECT_EQ(one.other_node_copies, 3);
  EXPECT_EQ(one.nodes_per_token_max, 1);
}

TEST(CommMeter, NodeCopiesAreNotCountedOnOneNode) {
  LocalComm comm(Topology{2, 2});
  MoeLayerOptions opt;
  opt.d_model = kD;
  opt.d_hidden = 8;
  opt.num_experts = 4;
  MoeLayer layer(opt, std::make_shared<FixedRouter>(TwoWorkerRouting()), &comm);
  RouteContext ctx;
  ctx.training = true;
  layer->forward(at::randn({8, kD}), at::Tensor(), ctx);
  EXPECT_FALSE(layer->last_stats().node_counts);
  EXPECT_EQ(layer->last_stats().other_node_copies, 0);
}

// Restore puts drained counters back (total unchanged: they were counted when recorded); Repeat
// counts them again, as a replayed graph step's exchanges (pending and total both grow).
TEST(CommMeter, RestoreKeepsTheTotalAndRepeatAddsToIt) {
  CommMeter meter;
  const Topology topo{2, 1};  // two workers, one per node
  // Worker 0 sends 3 rows to worker 1, worker 1 sends 1 row to worker 0, 16-byte rows.
  meter.Record(0, "fwd", topo, {0, 3, 1, 0}, 16, {0, 48, 16, 0}, 1, 2.0);
  EXPECT_EQ(meter.total().logical[2], 4 * 16);
  const auto drained = meter.Drain();
  EXPECT_TRUE(meter.pending().empty());
  meter.Restore(drained);
  EXPECT_EQ(meter.pending().at({0, "fwd"}).logical[2], 4 * 16);
  EXPECT_EQ(meter.total().logical[2], 4 * 16);
  EXPECT_EQ(meter.total().calls, 1);
  meter.Repeat(drained);
  EXPECT_EQ(meter.pending().at({0, "fwd"}).logical[2], 2 * 4 * 16);
  EXPECT_EQ(meter.pending().at({0, "fwd"}).calls, 2);
  EXPECT_EQ(meter.total().logical[2], 2 * 4 * 16);
  EXPECT_EQ(meter.total().wire[2], 2 * 64);
  EXPECT_EQ(meter.total().calls, 2);
  EXPECT_DOUBLE_EQ(meter.total().ms, 4.0);
}

TEST(CommMeter, TopologyClassifiesPairs) {
  Topology topo{4, 2};
  EXPECT_EQ(topo.Classify(1, 1), TrafficClass::kSameWorker);
  EXPECT_EQ(topo.Classify(0, 1), TrafficClass::kSameNode);
  EXPECT_EQ(topo.Classify(1, 2), TrafficClass::kOtherNode);
  EXPECT_EQ(topo.num_nodes(), 2);
}

}  // namespace
}  // namespace moebench
