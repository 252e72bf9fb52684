// The training metrics between two log steps: steps accumulate into the window, and closing it
// (at a log step, at a checkpoint, at the last step) turns it into the rows the store keeps:
// losses, throughput, communication by class, the compute model, routing statistics.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "harness/store/store.h"
#include "harness/train/training.h"

namespace moebench {

struct WindowRows {
  std::vector<MetricRow> metrics;
  std::vector<CommRow> comm;
  std::vector<ExpertLoadRow> load;
  double tokens_per_second = 0;
  double train_loss = 0;
  double mfu = 0;  // Note [MFU]
};

class MetricWindow {
 public:
  explicit MetricWindow(int workers) : expert_flops_(workers, 0.0) {}
  bool empty() const { return steps_ == 0; }
  void Add(const StepValues& v);
  // Closes the window at `step` (wall: training seconds so far) and starts a new one. On ranks
  // of a process group every rank calls it: sums over ranks are collectives.
  WindowRows Close(int64_t step, double wall, Training& t, const std::string& run_id);

 private:
  // The static path's device counts (Note [Static-shape path] in harness/moe/static_path.cpp)
  // since the last window: their expert FLOPs join this window, their bytes the meter.
  void AddDeviceTallies(Training& t);

  double loss_ = 0, nll_ = 0, aux_ = 0, seconds_ = 0;
  int64_t tokens_ = 0, steps_ = 0;
  double grad_norm_ = 0, lr_ = 0;  // the last step's
  std::map<std::string, double> extra_;
  double nonexpert_flops_ = 0;
  std::vector<double> expert_flops_;
  std::vector<double> layer_expert_flops_;  // by MoE layer
};

}  // namespace moebench
