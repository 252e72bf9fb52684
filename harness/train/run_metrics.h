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
// unused_experts, cross_worker_frac, expert_gflops (from `expert_flops_per_step`, the forward
// FLOPs of each MoE layer's experts per training step, in MoeLayers() order), loss.<name>;
// plus expert_load rows.
RoutingRows CollectRoutingRows(const std::string& run_id, int64_t step, double wall_s,
                               const Transformer& model,
                               const std::vector<double>& expert_flops_per_step);

// Comm rows per (layer, phase) and the per-step comm metrics (averaged over `steps`), from
// drained meter counters. CommMetrics: "comm.<class>_bytes", "comm.wire_<class>_bytes",
// "comm.calls" and "comm.ms" count the token all-to-alls (phases fwd and bwd) only;
// "comm.allreduce_bytes" the off-worker bytes of the gradient all-reduce (phase allreduce);
// "comm.measured_ms" and "comm.modeled_ms" every exchange, measured here and modeled by the
// meter's network model (Note [Network model]).
std::vector<CommRow> CommRows(const std::string& run_id, int64_t step,
                              const std::map<std::pair<int, std::string>, CommCounters>& drained);
std::vector<MetricRow> CommMetrics(
    int64_t step, double wall_s, int64_t steps,
    const std::map<std::pair<int, std::string>, CommCounters>& drained);

}  // namespace moebench
