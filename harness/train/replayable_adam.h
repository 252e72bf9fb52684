// The optimizer update as a CUDA graph can replay it: Adam whose per-step numbers (the
// learning rate, each parameter's bias corrections) are device tensors, not host scalars baked
// into the ops. Note [Replayable optimizer step] in replayable_adam.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <torch/optim/adam.h>

namespace moebench {

// lr(s) = base * min(s / warmup, sqrt(warmup / s)) (harness/train/lr_schedule.h) of a step
// count held in a device tensor (0-dim, double): the same value, computed where the step is.
at::Tensor InverseSqrtLr(double base, const at::Tensor& step, int64_t warmup);

// The state LibTorch's Adam keeps for parameter `p`, or null when it has none yet.
torch::optim::AdamParamState* AdamState(torch::optim::Adam& adam, const at::Tensor& p);

class ReplayableAdam {
 public:
  // Updates the parameters of `adam` (one parameter group, no weight decay, no amsgrad: what
  // the trainer builds) as torch::optim::Adam::step() would, with its hyper-parameters and in
  // its state, which stays where checkpoints save and load it. Makes the state of every
  // parameter that has none yet (step 0, zero moments), so that no tensor is made in a step.
  // `adam` must outlive this object.
  ReplayableAdam(torch::optim::Adam& adam, double base_lr, int64_t warmup);

  // Re-reads the state after it was replaced (a checkpoint load).
  void Sync();

  // The update of training step `step` (counted from 1): the learning rate of that step
  // (returned: a 0-dim double on the parameters' device), then every parameter with a gradient
  // updated by Adam. The device counts the training step: after step s - 1 it holds s - 1 and
  // adds 1; after any other step it is set (a fill, which a graph would bake in). Reads nothing
  // from the device; its ops and their scalar arguments are the same at consecutive steps whose
  // parameters have the same gradients defined.
  at::Tensor Step(int64_t step);

  // The training step the device counter holds (as the host counts it), and the parameters
  // (indices into the group) the last Step updated.
  int64_t step() const { return host_step_; }
  const std::vector<int64_t>& last_update() const { return last_update_; }

  // The host's part of Step(step) alone, for an update a CUDA graph replayed, captured from a
  // Step that updated the parameters `updated` (its last_update()): their host step counts,
  // which checkpoints save. Throws unless the device counter is at step - 1 (every step
  // updates once, eagerly or replayed).
  void Replayed(int64_t step, const std::vector<int64_t>& updated);

 private:
  // Index into params_ / the rows of steps_ of each parameter whose gradient is defined.
  std::vector<int64_t> WithGradients() const;

  torch::optim::Adam& adam_;
  double base_lr_;
  int64_t warmup_;
  std::vector<at::Tensor> params_;
  std::vector<torch::optim::AdamParamState*> states_;  // params_'s, owned by adam_
  std::vector<int64_t> last_update_;                   // the parameters the last Step updated
  at::Tensor step_;                                    // the training step: 0-dim double
  at::Tensor steps_;  // each parameter's Adam step count: [P] double
  at::Tensor all_;    // [P] ones, added when every parameter has a gradient
  int64_t host_step_ = 0;
};

}  // namespace moebench
