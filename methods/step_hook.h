// Note [Router step hooks]: a router whose state moves once per optimizer step from the step's
// global statistics (aux_free's selection bias) also derives from StepHook. After
// optimizer.step() the trainer (harness/train/training.cpp) takes every such router's
// statistics since its last update (StepCounts: [E] float64, this process's), sums them over
// ranks in one all-reduce for all MoE layers, and hands each router its sum with the step just
// taken and the run's max_steps (AfterStep). Routers without state need nothing.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace moebench {

class StepHook {
 public:
  virtual ~StepHook() = default;
  virtual at::Tensor StepCounts() = 0;
  virtual void AfterStep(const at::Tensor& global_counts, int64_t step, int64_t total_steps) = 0;
};

}  // namespace moebench
