#include "harness/comm/network_model.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace moebench {

namespace {

void CheckBandwidth(const char* name, double gbps) {
  if (!(std::isfinite(gbps) && gbps > 0)) {
    throw std::invalid_argument(std::string("network model: ") + name +
                                " must be a finite number > 0 (gigabits per second), got " +
                                std::to_string(gbps));
  }
}

// The shared node NIC: 0 means none.
void CheckNicBandwidth(double gbps) {
  if (!(std::isfinite(gbps) && gbps >= 0)) {
    throw std::invalid_argument(
        "network model: node_nic_gbps must be a finite number >= 0 (gigabits per second; 0: no "
        "shared node NIC), got " +
        std::to_string(gbps));
  }
}

void CheckLatency(const char* name, double us) {
  if (!(std::isfinite(us) && us >= 0)) {
    throw std::invalid_argument(std::string("network model: ") + name +
                                " must be a finite number >= 0 (microseconds), got " +
                                std::to_string(us));
  }
}

// The link every step of a ring over topo's ranks waits for (Note [Network model]): the
// node-crossing edge when the ring crosses nodes, at most the node NIC's bandwidth.
LinkParams RingLink(const NetworkModel& net, const Topology& topo) {
  if (topo.num_nodes() <= 1) return net.intra_node;
  LinkParams link = net.inter_node;
  if (net.node_nic_bytes_per_s > 0) {
    link.bytes_per_s = std::min(link.bytes_per_s, net.node_nic_bytes_per_s);
  }
  return link;
}

// One ring all-reduce of `bytes` (not necessarily whole) over W ranks.
double RingSeconds(const LinkParams& link, int w, double bytes) {
  if (w <= 1 || bytes <= 0) return 0;
  const double steps = 2.0 * (w - 1);
  return steps * (link.latency_s + bytes / w / link.bytes_per_s);
}

void CheckWorkers(const Topology& topo) {
  if (topo.workers < 1 || topo.workers_per_node < 1) {
    throw std::invalid_argument("network model: needs workers >= 1 and workers_per_node >= 1");
  }
}

}  // namespace

NetworkModel NetworkModel::FromGbps(double intra_gbps, double inter_gbps, double intra_lat_us,
                                    double inter_lat_us, double node_nic_gbps) {
  CheckBandwidth("intra_node_gbps", intra_gbps);
  CheckBandwidth("inter_node_gbps", inter_gbps);
  CheckLatency("intra_node_latency_us", intra_lat_us);
  CheckLatency("inter_node_latency_us", inter_lat_us);
  CheckNicBandwidth(node_nic_gbps);
  NetworkModel m;
  m.intra_node = {intra_gbps * 1e9 / 8, intra_lat_us * 1e-6};
  m.inter_node = {inter_gbps * 1e9 / 8, inter_lat_us * 1e-6};
  m.node_nic_bytes_per_s = node_nic_gbps * 1e9 / 8;
  return m;
}

double NetworkModel::AllToAllSeconds(const Topology& topo, const std::vector<int64_t>& wire) const {
  CheckWorkers(topo);
  const int w = topo.workers;
  if (wire.size() != static_cast<size_t>(w) * static_cast<size_t>(w)) {
    throw std::invalid_argument("network model: expected a " + std::to_string(w) + "x" +
                                std::to_string(w) + " byte matrix, got " +
                                std::to_string(wire.size()) + " entries");
  }
  double slowest = 0;
  // Off-node bytes each node sends and receives (for the shared node NIC).
  std::vector<double> node_out(static_cast<size_t>(topo.num_nodes()), 0.0);
  std::vector<double> node_in(node_out.size(), 0.0);
  for (int s = 0; s < w; ++s) {
    double seconds = 0;
    bool sends = false, off_node = false;
    for (int d = 0; d < w; ++d) {
      const int64_t bytes = wire[static_cast<size_t>(s) * w + d];
      if (bytes < 0) {
        throw std::invalid_argument("network model: negative byte count " + std::to_string(bytes) +
                                    " from " + std::to_string(s) + " to " + std::to_string(d));
      }
      const TrafficClass cls = topo.Classify(s, d);
      if (cls == TrafficClass::kSameWorker || bytes == 0) continue;
      sends = true;
      if (cls == TrafficClass::kOtherNode) {
        off_node = true;
        node_out[static_cast<size_t>(topo.NodeOf(s))] += static_cast<double>(bytes);
        node_in[static_cast<size_t>(topo.NodeOf(d))] += static_cast<double>(bytes);
      }
      seconds += static_cast<double>(bytes) / Link(cls).bytes_per_s;
    }
    if (sends) seconds += off_node ? inter_node.latency_s : intra_node.latency_s;
    slowest = std::max(slowest, seconds);
  }
  if (node_nic_bytes_per_s > 0) {
    for (size_t n = 0; n < node_out.size(); ++n) {
      const double busiest = std::max(node_out[n], node_in[n]);
      if (busiest > 0) {
        slowest = std::max(slowest, busiest / node_nic_bytes_per_s + inter_node.latency_s);
      }
    }
  }
  return slowest;
}

double NetworkModel::AllReduceSeconds(const Topology& topo, int64_t bytes) const {
  return AllReduceSeconds(topo, bytes, 1);
}

double NetworkModel::AllReduceSeconds(const Topology& topo, int64_t bytes, int64_t calls) const {
  CheckWorkers(topo);
  if (bytes < 0 || calls < 0) {
    throw std::invalid_argument("network model: all-reduce of " + std::to_string(bytes) +
                                " bytes in " + std::to_string(calls) + " calls");
  }
  if (calls == 0) return 0;
  const double per_call = static_cast<double>(bytes) / static_cast<double>(calls);
  return static_cast<double>(calls) * RingSeconds(RingLink(*this, topo), topo.workers, per_call);
}

std::vector<int64_t> NetworkModel::RingAllReduceBytes(const Topology& topo, int64_t bytes) {
  CheckWorkers(topo);
  if (bytes < 0) {
    throw std::invalid_argument("network model: all-reduce of " + std::to_string(bytes) + " bytes");
  }
  const int w = topo.workers;
  std::vector<int64_t> matrix(static_cast<size_t>(w) * w, 0);
  if (w == 1) return matrix;
  // 2 (W - 1) B / W without overflowing the product.
  const __int128 per_edge = static_cast<__int128>(bytes) * (2 * (w - 1)) / w;
  for (int r = 0; r < w; ++r) {
    matrix[static_cast<size_t>(r) * w + (r + 1) % w] = static_cast<int64_t>(per_edge);
  }
  return matrix;
}

}  // namespace moebench
