#include "harness/comm/comm_meter.h"

#include <stdexcept>

namespace moebench {

void CommCounters::Add(const CommCounters& other) {
  calls += other.calls;
  for (int c = 0; c < kNumTrafficClasses; ++c) {
    logical[c] += other.logical[c];
    wire[c] += other.wire[c];
  }
  ms += other.ms;
  modeled_ms += other.modeled_ms;
}

void CommMeter::Record(int layer, const std::string& phase, const Topology& topo,
                       const std::vector<int64_t>& rows, int64_t row_bytes,
                       const std::vector<int64_t>& wire_bytes, int64_t calls, double ms,
                       int only_source) {
  const int w = topo.workers;
  if (rows.size() != static_cast<size_t>(w * w) || wire_bytes.size() != rows.size()) {
    throw std::logic_error("CommMeter::Record: expected W*W entries");
  }
  CommCounters delta;
  delta.calls = calls;
  delta.ms = ms;
  // The whole exchange, whoever counts which row of it (see CommCounters).
  if (calls > 0 && only_source <= 0) {
    delta.modeled_ms = 1000.0 * network_.AllToAllSeconds(topo, wire_bytes);
  }
  for (int src = 0; src < w; ++src) {
    if (only_source >= 0 && src != only_source) continue;
    for (int dst = 0; dst < w; ++dst) {
      const int cls = static_cast<int>(topo.Classify(src, dst));
      delta.logical[cls] += rows[src * w + dst] * row_bytes;
      delta.wire[cls] += wire_bytes[src * w + dst];
    }
  }
  Add(layer, phase, delta);
}

void CommMeter::RecordAllReduce(const Topology& topo, int64_t bytes, int64_t calls, double ms,
                                int only_source) {
  if (bytes < 0 || calls < 0 || (calls == 0 && bytes > 0)) {
    throw std::logic_error("CommMeter::RecordAllReduce: " + std::to_string(bytes) + " bytes in " +
                           std::to_string(calls) + " calls");
  }
  const int w = topo.workers;
  const std::vector<int64_t> ring = NetworkModel::RingAllReduceBytes(topo, bytes);
  CommCounters delta;
  delta.calls = calls;
  delta.ms = ms;
  if (calls > 0 && only_source <= 0) {
    delta.modeled_ms = 1000.0 * network_.AllReduceSeconds(topo, bytes, calls);
  }
  for (int src = 0; src < w; ++src) {
    if (only_source >= 0 && src != only_source) continue;
    for (int dst = 0; dst < w; ++dst) {
      const int cls = static_cast<int>(topo.Classify(src, dst));
      delta.logical[cls] += ring[src * w + dst];
      delta.wire[cls] += ring[src * w + dst];
    }
  }
  Add(kAllReduceLayer, kAllReducePhase, delta);
}

void CommMeter::Add(int layer, const std::string& phase, const CommCounters& delta) {
  pending_[{layer, phase}].Add(delta);
  total_.Add(delta);
}

std::map<std::pair<int, std::string>, CommCounters> CommMeter::Drain() {
  std::map<std::pair<int, std::string>, CommCounters> out;
  out.swap(pending_);
  return out;
}

void CommMeter::Restore(const std::map<std::pair<int, std::string>, CommCounters>& counters) {
  for (const auto& [key, c] : counters) pending_[key].Add(c);
}

void CommMeter::Repeat(const std::map<std::pair<int, std::string>, CommCounters>& counters) {
  for (const auto& [key, c] : counters) Add(key.first, key.second, c);
}

}  // namespace moebench
