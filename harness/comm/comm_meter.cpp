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
}

void CommMeter::Record(int layer, const std::string& phase, const Topology& topo,
                       const std::vector<int64_t>& rows, int64_t row_bytes,
                       const std::vector<int64_t>& wire_bytes, int64_t calls, double ms) {
  const int w = topo.workers;
  if (rows.size() != static_cast<size_t>(w * w) || wire_bytes.size() != rows.size()) {
    throw std::logic_error("CommMeter::Record: expected W*W entries");
  }
  CommCounters delta;
  delta.calls = calls;
  delta.ms = ms;
  for (int src = 0; src < w; ++src) {
    for (int dst = 0; dst < w; ++dst) {
      const int cls = static_cast<int>(topo.Classify(src, dst));
      delta.logical[cls] += rows[src * w + dst] * row_bytes;
      delta.wire[cls] += wire_bytes[src * w + dst];
    }
  }
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

}  // namespace moebench
