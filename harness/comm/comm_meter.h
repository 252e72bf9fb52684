// Counts every exchange by traffic class. See Note [Logical and wire bytes].
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/comm/topology.h"

namespace moebench {

// Note [Logical and wire bytes]: for each all-to-all the meter adds, per (source, destination)
// worker pair, the logical bytes (routed token rows x d_model x element size: what the routing
// decided must move) and the wire bytes (the buffers as this exchange format sends them: with
// the `padded` format, every source sends each destination a fixed [E_loc, C, d] buffer, as
// DeepSpeed and fairseq do; with `compact`, exactly the routed rows plus the split counts).
// Pairs with source == destination are `same worker`: they never touch a network and are
// recorded separately. Forward and backward exchanges are both counted (the gradient of an
// all-to-all is an all-to-all in the opposite direction).
struct CommCounters {
  int64_t calls = 0;
  std::array<int64_t, kNumTrafficClasses> logical{};  // indexed by TrafficClass
  std::array<int64_t, kNumTrafficClasses> wire{};
  double ms = 0;

  void Add(const CommCounters& other);
  int64_t logical_off_worker() const { return logical[1] + logical[2]; }
  int64_t wire_off_worker() const { return wire[1] + wire[2]; }
};

class CommMeter {
 public:
  // rows[src * W + dst]: routed rows sent from src to dst; wire_bytes likewise, in bytes.
  // `calls` is the number of all-to-alls actually run (0 when the rows stayed put: one worker,
  // or a gating-dropout step), so same-worker bytes are counted either way.
  void Record(int layer, const std::string& phase, const Topology& topo,
              const std::vector<int64_t>& rows, int64_t row_bytes,
              const std::vector<int64_t>& wire_bytes, int64_t calls, double ms);
  // Counters accumulated since the last Drain, keyed by (layer, phase).
  std::map<std::pair<int, std::string>, CommCounters> Drain();
  // Puts drained counters back (e.g. after excluding an evaluation's exchanges).
  void Restore(const std::map<std::pair<int, std::string>, CommCounters>& counters);
  const std::map<std::pair<int, std::string>, CommCounters>& pending() const { return pending_; }
  // Totals since construction (never drained).
  const CommCounters& total() const { return total_; }

 private:
  std::map<std::pair<int, std::string>, CommCounters> pending_;
  CommCounters total_;
};

}  // namespace moebench
