// The network model (harness/comm/network_model.h, Note [Network model]) and the meter's modeled
// times. Every expected time is worked out by hand in the comments.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "harness/comm/comm_meter.h"
#include "harness/comm/network_model.h"

namespace moebench {
namespace {

// Default links: intra-node 150e9 B/s and 2 us, inter-node 12.5e9 B/s and 5 us.
const NetworkModel kNet;

Topology Topo(int workers, int per_node) {
  Topology t;
  t.workers = workers;
  t.workers_per_node = per_node;
  return t;
}

TEST(NetworkModel, DefaultsAreNvlinkAndInfinibandClass) {
  EXPECT_DOUBLE_EQ(kNet.intra_node.bytes_per_s, 150e9);
  EXPECT_DOUBLE_EQ(kNet.intra_node.latency_s, 2e-6);
  EXPECT_DOUBLE_EQ(kNet.inter_node.bytes_per_s, 12.5e9);
  EXPECT_DOUBLE_EQ(kNet.inter_node.latency_s, 5e-6);
}

TEST(NetworkModel, TwoRanksOnOneNode) {
  // Rank 0 sends 3e6 B to rank 1: 3e6 / 150e9 = 20 us + 2 us = 22 us.
  // Rank 1 sends 1.5e6 B to rank 0: 10 us + 2 us = 12 us. The exchange lasts 22 us.
  // Same-worker entries (9e9 B) never touch a link.
  const std::vector<int64_t> wire = {9'000'000'000, 3'000'000, 1'500'000, 9'000'000'000};
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(2, 2), wire), 22e-6, 1e-15);
}

TEST(NetworkModel, MaxOverSourcesOnTwoNodes) {
  // 4 ranks, 2 per node: node 0 = {0, 1}, node 1 = {2, 3}. wire[s][d]:
  //   rank 0: 1.5e6 -> 1 (same node: 10 us), 1e6 -> 2 (other node: 80 us): 90 us + 5 us = 95 us
  //   rank 1: 3e6 -> 0 (same node: 20 us), nothing off-node: 20 us + 2 us = 22 us
  //   rank 2: 2.5e6 -> 0 (other node: 200 us), 150e3 -> 3 (same node: 1 us): 201 + 5 = 206 us
  //   rank 3: nothing: 0
  // Rank 2 is the slowest sender: 206 us (the largest row by bytes, rank 1's 3e6 B, is not).
  const std::vector<int64_t> wire = {
      7,         1'500'000, 1'000'000, 0,            // from 0
      3'000'000, 0,         0,         0,            // from 1
      2'500'000, 0,         5,         150'000,      // from 2
      0,         0,         0,         123'456'789,  // from 3 (to itself only)
  };
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(4, 2), wire), 206e-6, 1e-15);
  // Without rank 2's row, rank 0 is the slowest: 95 us.
  std::vector<int64_t> no2 = wire;
  no2[8] = no2[11] = 0;
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(4, 2), no2), 95e-6, 1e-15);
}

TEST(NetworkModel, OneRankOffNodeBytesOnly) {
  // 1e6 bytes / 12.5e9 B/s = 80 us + 5 us = 85 us.
  std::vector<int64_t> wire(4, 0);
  wire[1] = 1'000'000;
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(2, 1), wire), 85e-6, 1e-15);
}

TEST(NetworkModel, ZeroBytesCostNothing) {
  EXPECT_EQ(kNet.AllToAllSeconds(Topo(4, 2), std::vector<int64_t>(16, 0)), 0.0);
  // Same-worker bytes only: no link, no latency.
  std::vector<int64_t> local(16, 0);
  for (int i = 0; i < 4; ++i) local[i * 4 + i] = 1'000'000;
  EXPECT_EQ(kNet.AllToAllSeconds(Topo(4, 2), local), 0.0);
  EXPECT_EQ(kNet.AllToAllSeconds(Topo(1, 1), {1'000'000}), 0.0);
  EXPECT_EQ(kNet.AllReduceSeconds(Topo(4, 2), 0), 0.0);
}

TEST(NetworkModel, AllToAllRejectsABadMatrix) {
  EXPECT_THROW(kNet.AllToAllSeconds(Topo(2, 2), {1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(kNet.AllToAllSeconds(Topo(2, 2), {0, -1, 0, 0}), std::invalid_argument);
}

TEST(NetworkModel, AllReduceOnOneRankIsFree) {
  EXPECT_EQ(kNet.AllReduceSeconds(Topo(1, 1), 1'000'000'000), 0.0);
  EXPECT_EQ(NetworkModel::RingAllReduceBytes(Topo(1, 1), 1'000'000'000), std::vector<int64_t>{0});
}

TEST(NetworkModel, RingAllReduceWithinOneNode) {
  // W = 4 on one node, 8e6 B: 2 * 3 = 6 steps of 2e6 B each; one step = 2 us + 2e6 / 150e9
  // = 2 us + 13.333... us; 6 steps = 12 us + 80 us = 92 us.
  EXPECT_NEAR(kNet.AllReduceSeconds(Topo(4, 4), 8'000'000), 92e-6, 1e-15);
}

TEST(NetworkModel, RingAllReduceOverTwoNodesUsesTheInterNodeLink) {
  // W = 4, 2 per node, 8e6 B: 6 steps of (5 us + 2e6 / 12.5e9 = 160 us) = 6 * 165 us = 990 us.
  EXPECT_NEAR(kNet.AllReduceSeconds(Topo(4, 2), 8'000'000), 990e-6, 1e-15);
  // W = 2 on two nodes, 1e6 B: 2 steps of (5 us + 5e5 / 12.5e9 = 40 us) = 90 us.
  EXPECT_NEAR(kNet.AllReduceSeconds(Topo(2, 1), 1'000'000), 90e-6, 1e-15);
}

TEST(NetworkModel, AllReduceOfSeveralCallsSplitsTheBytes) {
  // 3 calls of 8e6 / 3 B each, W = 4 on one node: each call = 6 * 2 us + 6 * (8e6/3/4) / 150e9
  // = 12 us + 26.666... us; 3 calls = 36 us + 80 us = 116 us (the bandwidth part does not
  // depend on the split, the latency part grows with the calls).
  EXPECT_NEAR(kNet.AllReduceSeconds(Topo(4, 4), 8'000'000, 3), 116e-6, 1e-15);
  EXPECT_EQ(kNet.AllReduceSeconds(Topo(4, 4), 0, 0), 0.0);
  EXPECT_THROW(kNet.AllReduceSeconds(Topo(4, 4), -1), std::invalid_argument);
}

TEST(NetworkModel, RingAllReduceBytesOnRingEdgesOnly) {
  // W = 4: each edge r -> r+1 carries 2 * 3 / 4 * 1001 = 1501.5 -> 1501 bytes.
  const std::vector<int64_t> m = NetworkModel::RingAllReduceBytes(Topo(4, 2), 1001);
  std::vector<int64_t> want(16, 0);
  want[0 * 4 + 1] = want[1 * 4 + 2] = want[2 * 4 + 3] = want[3 * 4 + 0] = 1501;
  EXPECT_EQ(m, want);
  // W = 2: both edges (0 -> 1, 1 -> 0) carry 2 * 1 / 2 * B = B.
  EXPECT_EQ(NetworkModel::RingAllReduceBytes(Topo(2, 2), 77), (std::vector<int64_t>{0, 77, 77, 0}));
  // No overflow of 2 (W - 1) B: 2 * 7 / 8 * 2^62 = 7 * 2^60.
  const std::vector<int64_t> big = NetworkModel::RingAllReduceBytes(Topo(8, 8), int64_t{1} << 62);
  EXPECT_EQ(big[1], int64_t{7} << 60);
}

TEST(NetworkModel, FromGbpsConvertsUnits) {
  // 100 Gb/s = 12.5e9 B/s; 1200 Gb/s = 150e9 B/s; 5 us = 5e-6 s.
  const NetworkModel m = NetworkModel::FromGbps(1200, 100, 2, 5);
  EXPECT_DOUBLE_EQ(m.inter_node.bytes_per_s, 12.5e9);
  EXPECT_DOUBLE_EQ(m.intra_node.bytes_per_s, 150e9);
  EXPECT_DOUBLE_EQ(m.intra_node.latency_s, 2e-6);
  EXPECT_DOUBLE_EQ(m.inter_node.latency_s, 5e-6);
  // 400 Gb/s = 50e9 B/s: 1e6 B off-node = 20 us + 0 us latency.
  const NetworkModel fast = NetworkModel::FromGbps(1200, 400, 0, 0);
  EXPECT_NEAR(fast.AllToAllSeconds(Topo(2, 1), {0, 1'000'000, 0, 0}), 20e-6, 1e-15);
}

TEST(NetworkModel, FromGbpsRejectsBadParametersNamingThem) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    double a, b, c, d;
    const char* name;
  };
  const Case cases[] = {
      {0, 100, 2, 5, "intra_node_gbps"},
      {-1, 100, 2, 5, "intra_node_gbps"},
      {nan, 100, 2, 5, "intra_node_gbps"},
      {1200, 0, 2, 5, "inter_node_gbps"},
      {1200, inf, 2, 5, "inter_node_gbps"},
      {1200, 100, -1, 5, "intra_node_latency_us"},
      {1200, 100, 2, -0.5, "inter_node_latency_us"},
      {1200, 100, 2, nan, "inter_node_latency_us"},
  };
  for (const Case& c : cases) {
    try {
      NetworkModel::FromGbps(c.a, c.b, c.c, c.d);
      ADD_FAILURE() << "accepted " << c.name;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(NetworkModel::FromGbps(1, 1, 0, 0));  // zero latency is allowed
  for (const double nic : {-1.0, nan, inf}) {
    try {
      NetworkModel::FromGbps(1200, 100, 2, 5, nic);
      ADD_FAILURE() << "accepted node_nic_gbps " << nic;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("node_nic_gbps"), std::string::npos) << e.what();
    }
  }
  // 0: no shared NIC; 400 Gb/s = 50e9 B/s.
  EXPECT_EQ(NetworkModel::FromGbps(1200, 100, 2, 5, 0).node_nic_bytes_per_s, 0.0);
  EXPECT_DOUBLE_EQ(NetworkModel::FromGbps(1200, 100, 2, 5, 400).node_nic_bytes_per_s, 50e9);
}

// ---- a shared node NIC -------------------------------------------------------------------------

NetworkModel WithNic(double gbps) {
  NetworkModel m;
  m.node_nic_bytes_per_s = gbps * 1e9 / 8;
  return m;
}

// W ranks each sending `bytes` to every other rank.
std::vector<int64_t> Uniform(int w, int64_t bytes) {
  std::vector<int64_t> wire(static_cast<size_t>(w) * w, bytes);
  for (int r = 0; r < w; ++r) wire[static_cast<size_t>(r) * w + r] = 0;
  return wire;
}

TEST(NetworkModel, ASharedNodeNicSlowsAUniformAllToAllOnlyWhenNarrowerThanItsRanksLinks) {
  // 4 ranks, 2 per node, 1e6 B from every rank to every other. A rank: 1e6 / 150e9 = 6.667 us
  // to its node peer + 2e6 / 12.5e9 = 160 us off-node + 5 us = 171.667 us.
  const std::vector<int64_t> wire = Uniform(4, 1'000'000);
  const double rank_time = 1e6 / 150e9 + 160e-6 + 5e-6;
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(4, 2), wire), rank_time, 1e-15);
  // A 100 Gb/s NIC per node (12.5e9 B/s): each node sends 2 ranks x 2 x 1e6 = 4e6 B off-node
  // through it: 320 us + 5 us = 325 us.
  EXPECT_NEAR(WithNic(100).AllToAllSeconds(Topo(4, 2), wire), 325e-6, 1e-15);
  // 200 Gb/s = 2 x the ranks' 100 Gb/s: 160 us + 5 us = 165 us < the busiest rank's time.
  EXPECT_NEAR(WithNic(200).AllToAllSeconds(Topo(4, 2), wire), rank_time, 1e-15);
  // On one node nothing crosses a NIC.
  EXPECT_NEAR(WithNic(1).AllToAllSeconds(Topo(4, 4), wire), 3e6 / 150e9 + 2e-6, 1e-15);
}

TEST(NetworkModel, ASharedNodeNicCountsWhatANodeReceivesToo) {
  // 6 ranks, 2 per node (nodes {0,1}, {2,3}, {4,5}); ranks 2..5 each send 1e6 B to rank 0.
  // A sender: 1e6 / 12.5e9 = 80 us + 5 us = 85 us. Nodes 1 and 2 each send 2e6 B (160 us), node
  // 0 receives 4e6 B: 320 us + 5 us = 325 us through a 100 Gb/s NIC.
  std::vector<int64_t> wire(36, 0);
  for (int s = 2; s < 6; ++s) wire[static_cast<size_t>(s) * 6] = 1'000'000;
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(6, 2), wire), 85e-6, 1e-15);
  EXPECT_NEAR(WithNic(100).AllToAllSeconds(Topo(6, 2), wire), 325e-6, 1e-15);
}

TEST(NetworkModel, ARingAllReduceCrossesEachNodeNicOnce) {
  // W = 4, 2 per node, 8e6 B: 6 steps of B / W = 2e6 B on the node-crossing edge. A 50 Gb/s
  // NIC (6.25e9 B/s) is narrower than the 100 Gb/s link: 6 x (5 us + 320 us) = 1950 us; a
  // 400 Gb/s NIC is wider: 6 x (5 us + 160 us) = 990 us, as without one.
  EXPECT_NEAR(WithNic(50).AllReduceSeconds(Topo(4, 2), 8'000'000), 1950e-6, 1e-15);
  EXPECT_NEAR(WithNic(400).AllReduceSeconds(Topo(4, 2), 8'000'000), 990e-6, 1e-15);
  // Within one node the ring never reaches the NIC: 6 x (2 us + 2e6 / 150e9).
  EXPECT_NEAR(WithNic(1).AllReduceSeconds(Topo(4, 4), 8'000'000), 6 * (2e-6 + 2e6 / 150e9), 1e-15);
}

TEST(NetworkModel, TheGatingDropoutBasePairOnAHundredGigabitNodeNic) {
  // docs/network-model.md: 16 workers, 8 per node, Switch at capacity factor 1 with 4096
  // tokens per worker: a padded [256, 512] fp32 buffer (524288 B) to every other worker per
  // exchange. Per rank: 7 x 524288 / 150e9 + 8 x 524288 / 12.5e9 + 5 us = 365.01 us. Through
  // one 100 Gb/s NIC per node: 8 ranks x 8 x 524288 B = 33554432 B / 12.5e9 + 5 us = 2689.35 us,
  // 7.37x longer; 24 exchanges a step: 64.54 ms.
  const std::vector<int64_t> wire = Uniform(16, 524288);
  const double per_rank = 7 * 524288 / 150e9 + 8 * 524288 / 12.5e9 + 5e-6;
  const double per_nic = 8 * 8 * 524288 / 12.5e9 + 5e-6;
  EXPECT_NEAR(kNet.AllToAllSeconds(Topo(16, 8), wire), per_rank, 1e-15);
  EXPECT_NEAR(WithNic(100).AllToAllSeconds(Topo(16, 8), wire), per_nic, 1e-15);
  EXPECT_NEAR(24 * per_nic * 1e3, 64.54, 0.005);
  // The gradient all-reduce keeps the full 100 Gb/s: its one node-crossing edge is alone on
  // the NIC.
  EXPECT_DOUBLE_EQ(WithNic(100).AllReduceSeconds(Topo(16, 8), 159'100'000, 6),
                   kNet.AllReduceSeconds(Topo(16, 8), 159'100'000, 6));
}

// ---- the meter's modeled times -----------------------------------------------------------------

CommCounters Sum(const std::map<std::pair<int, std::string>, CommCounters>& drained) {
  CommCounters total;
  for (const auto& [key, c] : drained) total.Add(c);
  return total;
}

TEST(CommMeterModel, RecordModelsTheWholeExchange) {
  // 2 ranks on 2 nodes; 1e6 wire bytes 0 -> 1 (85 us), 2.5e6 B 1 -> 0 (200 + 5 = 205 us).
  const Topology topo = Topo(2, 1);
  const std::vector<int64_t> rows = {0, 10, 25, 0};
  const std::vector<int64_t> wire = {0, 1'000'000, 2'500'000, 0};
  CommMeter meter;
  meter.Record(1, "fwd", topo, rows, 100'000, wire, 1, 0.5);
  meter.Record(1, "fwd", topo, rows, 100'000, wire, 0, 0.0);  // rows stayed put: no time
  const auto drained = meter.Drain();
  ASSERT_EQ(drained.size(), 1u);
  const CommCounters& c = drained.at({1, "fwd"});
  EXPECT_NEAR(c.modeled_ms, 0.205, 1e-12);
  EXPECT_DOUBLE_EQ(c.ms, 0.5);
  EXPECT_NEAR(meter.total().modeled_ms, 0.205, 1e-12);
}

TEST(CommMeterModel, RanksCountingTheirOwnRowsSumToTheSingleProcessTime) {
  // The same 4 x 4 exchange counted by one process and by 4 ranks (only_source = rank): the
  // bytes and the modeled time summed over the ranks are the single-process ones.
  const Topology topo = Topo(4, 2);
  std::vector<int64_t> rows(16), wire(16);
  for (int i = 0; i < 16; ++i) {
    rows[i] = 3 + i;
    wire[i] = 1000 * (i + 1);
  }
  CommMeter single;
  single.Record(0, "fwd", topo, rows, 8, wire, 1, 1.0);
  const CommCounters one = Sum(single.Drain());
  CommCounters ranks;
  for (int r = 0; r < 4; ++r) {
    CommMeter meter;
    meter.Record(0, "fwd", topo, rows, 8, wire, 1, 1.0, r);
    const CommCounters c = Sum(meter.Drain());
    EXPECT_EQ(c.modeled_ms > 0, r == 0) << "rank " << r;
    ranks.Add(c);
  }
  EXPECT_GT(one.modeled_ms, 0);
  EXPECT_DOUBLE_EQ(ranks.modeled_ms, one.modeled_ms);
  EXPECT_EQ(ranks.logical, one.logical);
  EXPECT_EQ(ranks.wire, one.wire);
  EXPECT_DOUBLE_EQ(one.modeled_ms, 1000 * NetworkModel{}.AllToAllSeconds(topo, wire));
}

TEST(CommMeterModel, SetNetworkChangesTheModeledTime) {
  // 1e6 B off-node at 400 Gb/s (50e9 B/s) with 1 us latency: 20 us + 1 us = 21 us.
  CommMeter meter;
  meter.set_network(NetworkModel::FromGbps(1200, 400, 2, 1));
  meter.Record(0, "fwd", Topo(2, 1), {0, 1, 0, 0}, 1'000'000, {0, 1'000'000, 0, 0}, 1, 0.0);
  EXPECT_NEAR(meter.total().modeled_ms, 0.021, 1e-12);
}

TEST(CommMeterModel, RecordAllReduceCountsRingBytesAndModelsEachCall) {
  // W = 4, 2 per node, 8e6 B in 2 calls (4e6 B each). Ring edges 0->1, 2->3 same node,
  // 1->2, 3->0 other node; each edge carries 2 * 3 / 4 * 8e6 = 12e6 B in all.
  // One call: 6 steps of (5 us + 1e6 / 12.5e9 = 80 us) = 510 us; two calls: 1020 us.
  const Topology topo = Topo(4, 2);
  CommMeter meter;
  meter.RecordAllReduce(topo, 8'000'000, 2, 0.25);
  const auto drained = meter.Drain();
  ASSERT_EQ(drained.size(), 1u);
  const CommCounters& c = drained.at({CommMeter::kAllReduceLayer, "allreduce"});
  EXPECT_EQ(CommMeter::kAllReduceLayer, -1);
  EXPECT_EQ(c.calls, 2);
  EXPECT_DOUBLE_EQ(c.ms, 0.25);
  EXPECT_EQ(c.logical[0], 0);
  EXPECT_EQ(c.logical[1], 24'000'000);
  EXPECT_EQ(c.logical[2], 24'000'000);
  EXPECT_EQ(c.wire, c.logical);
  EXPECT_NEAR(c.modeled_ms, 1.020, 1e-12);

  // Per rank: rank 1 sends on 1 -> 2 (other node) only, and carries no modeled time.
  CommMeter rank1;
  rank1.RecordAllReduce(topo, 8'000'000, 2, 0.25, 1);
  const CommCounters r1 = Sum(rank1.Drain());
  EXPECT_EQ(r1.logical[1], 0);
  EXPECT_EQ(r1.logical[2], 12'000'000);
  EXPECT_EQ(r1.modeled_ms, 0.0);

  EXPECT_THROW(meter.RecordAllReduce(topo, 100, 0, 0), std::logic_error);
  EXPECT_THROW(meter.RecordAllReduce(topo, -1, 1, 0), std::logic_error);
}

TEST(CommMeterModel, AllReduceOnOneWorkerIsFree) {
  CommMeter meter;
  meter.RecordAllReduce(Topo(1, 1), 8'000'000, 3, 0.0);
  const CommCounters c = Sum(meter.Drain());
  EXPECT_EQ(c.calls, 3);
  EXPECT_EQ(c.logical, (std::array<int64_t, kNumTrafficClasses>{0, 0, 0}));
  EXPECT_EQ(c.modeled_ms, 0.0);
}

}  // namespace
}  // namespace moebench
