// Turns what the MoE layers and the byte meter saw into store rows: per-layer routing
// metrics, expert load, and communication by class.
#pragma once

#include <string>
#include <vector>

#include "harness/comm/comm_meter.h"
#include "harness/model/transformer.h"
#include "harness/store/store.h"

namespace moebench {

struct RoutingRows {
  std::vector<MetricRow> metrics;
  std::vector<ExpertLoadRow> load;
};

// Metrics named "moe.<layer>.<what>": dropped_frac, entropy, load_cv, load_max_mean,
// unused_experts, cross_worker_frac, loss.<name>; plus expert_load rows.
RoutingRows CollectRoutingRows(const std::string& run_id, int64_t step, double wall_s,
                               const Transformer& model);

// Comm rows per (layer, phase) and the per-step byte metrics ("comm.<class>_bytes" averaged
// over `steps`), from drained meter counters.
std::vector<CommRow> CommRows(const std::string& run_id, int64_t step,
                              const std::map<std::pair<int, std::string>, CommCounters>& drained);
std::vector<MetricRow> CommMetrics(
    int64_t step, double wall_s, int64_t steps,
    const std::map<std::pair<int, std::string>, CommCounters>& drained);

}  // namespace moebench
