// Counts every exchange by traffic class. See Note [Logical and wire bytes].
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "harness/comm/network_model.h"
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
//
// Besides the measured time (`ms`: what the exchange took here), every exchange gets a modeled
// time (`modeled_ms`): what its wire bytes would take on the cluster the meter's NetworkModel
// describes (Note [Network model]). The modeled time depends on the whole W*W wire matrix only,
// never on who ran the exchange: one process playing W workers and W ranks of a process group
// get the same modeled time for the same matrix. A rank that counts only its own row
// (only_source = its rank) still models the whole exchange, and the time goes to rank 0's
// counters (0 on the other ranks), so that the sum over ranks -- like the byte counters -- is
// the single-process value (so are the max over ranks and rank 0's own counters). The static
// MoE path on a rank records its logical rows with only_source = -1: the matrix it passes holds
// its own tokens' rows (its row one way, its column on the way back), so the sums over ranks
// are again the whole matrix.
struct CommCounters {
  int64_t calls = 0;
  std::array<int64_t, kNumTrafficClasses> logical{};  // indexed by TrafficClass
  std::array<int64_t, kNumTrafficClasses> wire{};
  double ms = 0;          // measured
  double modeled_ms = 0;  // Note [Network model]

  void Add(const CommCounters& other);
  int64_t logical_off_worker() const { return logical[1] + logical[2]; }
  int64_t wire_off_worker() const { return wire[1] + wire[2]; }
};

class CommMeter {
 public:
  // rows[src * W + dst]: routed rows sent from src to dst; wire_bytes likewise, in bytes.
  // `calls` is the number of all-to-alls actually run (0 when the rows stayed put: one worker,
  // or a gating-dropout step), so same-worker bytes are counted either way. The modeled time
  // is NetworkModel::AllToAllSeconds(topo, wire_bytes) when calls > 0, else 0 (one exchange:
  // wire_bytes is what that exchange sends).
  // only_source >= 0: count the bytes of that source's row only (a rank of a process group
  // counts what it sends itself; the sum over ranks is the whole matrix); the modeled time of
  // the whole matrix goes to only_source == 0 (see CommCounters).
  void Record(int layer, const std::string& phase, const Topology& topo,
              const std::vector<int64_t>& rows, int64_t row_bytes,
              const std::vector<int64_t>& wire_bytes, int64_t calls, double ms,
              int only_source = -1);
  // A data-parallel gradient all-reduce, recorded under layer -1, phase "allreduce": `bytes`
  // is the size of every bucket together, `calls` the number of all-reduces (buckets) it took,
  // `ms` their measured time. Logical and wire bytes are those of a ring all-reduce
  // (NetworkModel::RingAllReduceBytes, 2 (W - 1) / W * bytes on every ring edge); the modeled
  // time is `calls` ring all-reduces of bytes / calls each (NetworkModel::AllReduceSeconds).
  // One process playing W workers runs no all-reduce: it records the one W ranks would run
  // (ms = 0), so that both report the same bytes and modeled time. only_source as in Record.
  void RecordAllReduce(const Topology& topo, int64_t bytes, int64_t calls, double ms,
                       int only_source = -1);
  // The link parameters of the modeled times (default: NetworkModel{}).
  void set_network(const NetworkModel& network) { network_ = network; }
  const NetworkModel& network() const { return network_; }
  // Counters accumulated since the last Drain, keyed by (layer, phase).
  std::map<std::pair<int, std::string>, CommCounters> Drain();
  // Puts drained counters back (e.g. after excluding an evaluation's exchanges): they were
  // counted in total() when recorded, so it stays as it is.
  void Restore(const std::map<std::pair<int, std::string>, CommCounters>& counters);
  // Counts `counters` once more, as if recorded again (a replayed CUDA graph step's exchanges,
  // which run without the host code that records them): pending and total() both grow.
  void Repeat(const std::map<std::pair<int, std::string>, CommCounters>& counters);
  // Layer and phase of RecordAllReduce.
  static constexpr int kAllReduceLayer = -1;
  static constexpr const char* kAllReducePhase = "allreduce";
  const std::map<std::pair<int, std::string>, CommCounters>& pending() const { return pending_; }
  // Totals since construction (never drained).
  const CommCounters& total() const { return total_; }

 private:
  void Add(int layer, const std::string& phase, const CommCounters& delta);

  std::map<std::pair<int, std::string>, CommCounters> pending_;
  CommCounters total_;
  NetworkModel network_;
};

}  // namespace moebench
