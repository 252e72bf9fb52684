// The network model: counted bytes -> modeled communication time on a cluster. Torch-free.
// See Note [Network model].
#pragma once

#include <cstdint>
#include <vector>

#include "harness/comm/topology.h"

namespace moebench {

// Note [Network model]: what the bytes the meter counts (Note [Logical and wire bytes]) would
// cost on a cluster whose ranks are laid out as `Topology` says (W ranks, workers_per_node per
// node), so that runs of one process playing W workers report a cluster time too.
//
// Links. Every rank has its own link of each class: one to the other ranks of its node
// (`intra_node`, NVLink-class by default: 150 GB/s = 1200 Gb/s, 2 us per message) and one to
// the other nodes (`inter_node`, InfiniBand-class by default: 100 Gb/s = 12.5e9 B/s, 5 us per
// message). Bandwidths are per rank and per direction. Ranks send concurrently; the transfers
// one rank sends are serialised on its links (one after another, not in parallel over its
// intra- and inter-node links).
//
// All-to-all, with wire[s * W + d] the bytes rank s sends rank d (s == d ignored: same worker):
//
//   time = max over sources s of ( sum over d != s of wire[s][d] / bw(class(s, d))
//                                  + latency(s) )
//   latency(s) = inter-node latency if s sends any bytes off its node, else intra-node
//                latency if it sends any bytes at all, else 0
//
// i.e. the exchange lasts as long as its busiest sender, which pays one message latency of the
// slowest class it uses (the messages of one rank are in flight together).
//
// Ring all-reduce of B bytes over W ranks (0 when W == 1): 2 (W - 1) steps (reduce-scatter, then
// all-gather); in each step every rank sends B / W bytes to the next rank of the ring
// r -> (r + 1) % W, all edges concurrently, so a step costs the slowest edge's latency +
// (B / W) / its bandwidth; the slowest edge is inter-node when the ring crosses nodes
// (num_nodes > 1), else intra-node:
//
//   time = 2 (W - 1) * (latency + (B / W) / bw)
//
// Every ring edge carries 2 (W - 1) / W * B bytes in all (RingAllReduceBytes).
//
// Shared node NIC (optional, `node_nic`; off by default). On most GPU clusters the ranks of a
// node share the node's network adapters: "100 Gb/s InfiniBand" is a node's figure, not each
// GPU's. With a node NIC of N bytes/s per direction, the off-node bytes of all of a node's
// ranks also queue through it, so
//
//   all-to-all time = max( the busiest sender as above,
//                          max over nodes n and directions of
//                            (off-node bytes n sends, or receives) / N + inter-node latency )
//
// and a ring all-reduce, whose ranks are laid out node by node so that exactly one ring edge
// leaves each node (and one enters it), runs its node-crossing edge at min(inter-node, N).
// With N >= workers_per_node x the inter-node bandwidth, a uniform all-to-all is not slowed; at
// N = the inter-node bandwidth a node's ranks share one rank's worth of link.
//
// What it ignores: congestion (many ranks of a node sharing one NIC, unless `node_nic` is set;
// switch uplinks, oversubscribed fabrics), overlap of communication with compute or of one exchange
// with another, in-network reductions (SHARP) and hierarchical all-reduce, protocol overheads and
// message sizes below which bandwidth is not reached. So it underestimates when a node's ranks
// share fewer inter-node links than they have ranks, when the fabric is congested or for small
// messages (latency is charged once per exchange and sender, not per message or chunk); and it
// overestimates when a framework overlaps communication with compute, pipelines the all-to-all over
// several links at once, or reduces inside the network. It is an accounting model for comparing
// routing methods under one set of stated assumptions, not a network simulator.
struct LinkParams {
  double bytes_per_s;
  double latency_s;
};

struct NetworkModel {
  LinkParams intra_node{150e9, 2e-6};
  LinkParams inter_node{100e9 / 8, 5e-6};
  // Bytes per second per direction of the NIC a node's ranks share for off-node traffic;
  // 0: none (every rank's inter-node link on its own, the default).
  double node_nic_bytes_per_s = 0;

  // From the run-spec units: bandwidths in gigabits per second (> 0; the node NIC >= 0, 0 for
  // none), latencies in microseconds (>= 0). Throws std::invalid_argument naming the parameter
  // otherwise.
  static NetworkModel FromGbps(double intra_gbps, double inter_gbps, double intra_lat_us,
                               double inter_lat_us, double node_nic_gbps = 0);

  // One all-to-all with the W*W wire-byte matrix wire[src*W+dst] (same-worker entries ignored).
  // Throws std::invalid_argument when the matrix is not W*W or has a negative entry.
  double AllToAllSeconds(const Topology& topo, const std::vector<int64_t>& wire) const;
  // Ring all-reduce of `bytes` over topo.workers ranks (0 when W == 1 or bytes == 0).
  double AllReduceSeconds(const Topology& topo, int64_t bytes) const;
  // The same for `calls` all-reduces of `bytes` bytes in all (each call bytes / calls, which
  // need not be whole): calls times the time of one call.
  double AllReduceSeconds(const Topology& topo, int64_t bytes, int64_t calls) const;
  // Bytes each ring edge (r -> (r+1) % W) carries for a ring all-reduce of `bytes`:
  // 2*(W-1)/W*bytes (integer, rounded down); W*W matrix with only ring edges nonzero.
  static std::vector<int64_t> RingAllReduceBytes(const Topology& topo, int64_t bytes);

  const LinkParams& Link(TrafficClass cls) const {
    return cls == TrafficClass::kOtherNode ? inter_node : intra_node;
  }
};

}  // namespace moebench
