#include "harness/train/run_metrics.h"

#include <algorithm>
#include <cmath>

namespace moebench {

RoutingRows CollectRoutingRows(const std::string& run_id, int64_t step, double wall_s,
                               const Transformer& model,
                               const std::vector<double>& expert_flops_per_step) {
  RoutingRows out;
  size_t position = 0;
  for (const auto& layer : model->MoeLayers()) {
    const double layer_flops =
        position < expert_flops_per_step.size() ? expert_flops_per_step[position] : 0.0;
    ++position;
    const MoeLayerStats& s = layer->last_stats();
    const int idx = layer->options().index;
    const std::string p = "moe." + std::to_string(idx) + ".";
    auto add = [&](const std::string& key, double v) {
      out.metrics.push_back({step, wall_s, p + key, v});
    };
    const auto& load = s.tokens_per_expert;
    double mean = 0, max = 0;
    int unused = 0;
    for (int64_t n : load) {
      mean += static_cast<double>(n);
      max = std::max(max, static_cast<double>(n));
      unused += n == 0 ? 1 : 0;
    }
    mean /= std::max<size_t>(load.size(), 1);
    double var = 0;
    for (int64_t n : load) var += (n - mean) * (n - mean);
    var /= std::max<size_t>(load.size(), 1);
    add("dropped_frac", s.choices > 0 ? static_cast<double>(s.dropped) / s.choices : 0.0);
    add("entropy", s.entropy);
    add("load_cv", mean > 0 ? std::sqrt(var) / mean : 0.0);
    add("load_max_mean", mean > 0 ? max / mean : 0.0);
    add("unused_experts", unused);
    add("cross_worker_frac", s.rows > 0 ? static_cast<double>(s.rows_cross_worker) / s.rows : 0.0);
    add("expert_gflops", layer_flops / 1e9);
    add("exchange_skipped", s.exchange_skipped ? 1.0 : 0.0);
    if (s.node_counts) {  // Note [Node copies]
      add("other_node_copies_per_token",
          s.real_tokens > 0 ? static_cast<double>(s.other_node_copies) / s.real_tokens : 0.0);
      add("nodes_per_token_max", static_cast<double>(s.nodes_per_token_max));
    }
    for (const auto& [name, value] : s.losses) add("loss." + name, value);
    for (const auto& [name, value] : s.router_stats) add("router." + name, value);
    for (size_t e = 0; e < load.size(); ++e) {
      out.load.push_back({run_id, step, idx, static_cast<int>(e), load[e], 0});
    }
  }
  return out;
}

std::vector<CommRow> CommRows(const std::string& run_id, int64_t step,
                              const std::map<std::pair<int, std::string>, CommCounters>& drained) {
  std::vector<CommRow> rows;
  for (const auto& [key, c] : drained) {
    CommRow r;
    r.run_id = run_id;
    r.step = step;
    r.layer = key.first;
    r.phase = key.second;
    r.calls = c.calls;
    r.bytes_local = c.logical[0];
    r.bytes_intra_node = c.logical[1];
    r.bytes_inter_node = c.logical[2];
    r.wire_intra_node = c.wire[1];
    r.wire_inter_node = c.wire[2];
    r.wire_bytes = c.wire[0] + c.wire[1] + c.wire[2];
    r.ms = c.ms;
    r.modeled_ms = c.modeled_ms;
    rows.push_back(r);
  }
  return rows;
}

std::vector<MetricRow> CommMetrics(
    int64_t step, double wall_s, int64_t steps,
    const std::map<std::pair<int, std::string>, CommCounters>& drained) {
  CommCounters all, all_to_all, all_reduce;
  for (const auto& [key, c] : drained) {
    all.Add(c);
    if (key.second == "fwd" || key.second == "bwd") all_to_all.Add(c);
    if (key.second == CommMeter::kAllReducePhase) all_reduce.Add(c);
  }
  const double n = static_cast<double>(std::max<int64_t>(steps, 1));
  return {
      // The token exchanges (fwd and bwd all-to-alls): bytes by class, calls, measured time.
      {step, wall_s, "comm.same_worker_bytes", all_to_all.logical[0] / n},
      {step, wall_s, "comm.same_node_bytes", all_to_all.logical[1] / n},
      {step, wall_s, "comm.other_node_bytes", all_to_all.logical[2] / n},
      {step, wall_s, "comm.wire_same_node_bytes", all_to_all.wire[1] / n},
      {step, wall_s, "comm.wire_other_node_bytes", all_to_all.wire[2] / n},
      {step, wall_s, "comm.calls", all_to_all.calls / n},
      {step, wall_s, "comm.ms", all_to_all.ms / n},
      // The gradient all-reduce: bytes every rank sends other ranks (ring).
      {step, wall_s, "comm.allreduce_bytes", all_reduce.logical_off_worker() / n},
      // Every exchange (all-to-alls, split-size exchanges, all-reduce): measured here and
      // modeled on the run's network (Note [Network model]).
      {step, wall_s, "comm.measured_ms", all.ms / n},
      {step, wall_s, "comm.modeled_ms", all.modeled_ms / n},
  };
}

}  // namespace moebench
