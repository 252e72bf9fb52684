// What one run trains with, and one training step: the pieces TrainRun (trainer.cpp) puts
// together. Built once per process; on ranks of a process group every rank builds the whole
// model from the same seed and keeps its own experts.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/optim/adam.h>

#include "harness/comm/comm.h"
#include "harness/comm/dist_env.h"
#include "harness/model/compute_model.h"
#include "harness/model/transformer.h"
#include "harness/spec/run_spec.h"
#include "harness/train/data_pipeline.h"
#include "harness/train/device_peak.h"
#include "harness/train/expert_parallel.h"
#include "harness/train/replayable_adam.h"
#include "methods/method.h"

namespace moebench {

struct Training {
  explicit Training(TranslationData d) : data(std::move(d)) {}
  RunSpec spec;
  at::Device device = at::kCPU;
  bool bf16 = false;
  int threads = 1;
  TranslationData data;
  std::unique_ptr<Comm> comm;
  std::unique_ptr<Method> method;
  Transformer model{nullptr};
  ParamCounts params;
  ParamSplit split;
  std::unique_ptr<torch::optim::Adam> optimizer;  // the state, which checkpoints hold
  std::unique_ptr<ReplayableAdam> update;         // the update (Note [Replayable optimizer step])
  const DeviceProfile* device_profile = nullptr;
  DevicePeak peak;  // what MFU is measured against (Note [MFU])
  std::optional<DistEnv> dist;
};

// One process playing `workers` virtual workers, or one rank of a c10d process group (checks
// that the rank environment matches the spec).
std::unique_ptr<Comm> MakeComm(const RunSpec& spec, const RunEnv& env, bool cuda);

// Data, model, method, optimizer; `comm` is the process group already made (ranks) or null.
std::unique_ptr<Training> BuildTraining(const RunSpec& spec, const at::Device& device, int threads,
                                        std::unique_ptr<Comm> comm, const RunEnv& env,
                                        const std::optional<DistEnv>& dist);

// What one step measured, on the host.
struct StepValues {
  double loss = 0;               // the objective
  double ce = 0, nll = 0;        // summed over this process's target tokens
  double aux = 0;                // the MoE layers' weighted auxiliary loss
  int64_t tokens = 0;            // the whole batch's target tokens
  double seconds = 0;            // wall-clock of the step, its batch included (the caller's)
  double grad_norm = 0, lr = 0;  // before clipping; the learning rate used
  std::map<std::string, double> metrics;  // the method's extra metrics
  // Forward FLOPs (Note [Compute model]): non-expert, and the experts' by worker.
  double nonexpert_flops = 0;
  std::vector<double> expert_flops;
  std::vector<double> layer_expert_flops;  // by MoE layer (this process's experts)
};

// Whether a metric window closes after `step`: at every log step, every checkpoint and the last
// step (so a run resumed from a checkpoint logs what the uninterrupted run logs).
bool WindowClosesAt(const RunSpec& spec, int64_t step);

// Forward (the method's objective, perhaps several passes), backward, gradient all-reduce,
// clipping, learning rate, Adam (the last three on the device: Note [Replayable optimizer
// step]), the routers' step hooks. Throws when the loss is not finite. The MoE layers compute
// their routing statistics only at the steps whose metrics are logged (WindowClosesAt).
// rank_shares: on a process group, every rank's share of each micro-batch (RankShares of the
// step's whole batch), which the static-shape MoE path needs; empty elsewhere.
StepValues TrainStep(Training& t, const Batch& batch, int64_t step,
                     const std::vector<std::vector<RankShare>>& rank_shares = {});

// The parts of a step that graph steps (harness/train/step_graphs.h) share with TrainStep.

// Data-parallel gradient buckets (DDP's default size).
constexpr int64_t kGradBucketBytes = 25 << 20;

// A step's values on the device, 0-dim doubles: the objective, the cross entropy and NLL
// summed over target tokens, the weighted auxiliary loss (each summed over micro-batches), and
// the gradient norm before clipping.
struct StepTensors {
  at::Tensor loss, ce, nll, aux, grad_norm;
  // The method's metrics (ObjectiveOutput::metrics), summed over micro-batches weighted 1/A:
  // made by the first step that reports them, then written in place.
  std::map<std::string, at::Tensor> metrics;
  static StepTensors Zeros(const at::Device& device);
};

struct StepOptions {
  bool statistics = false;  // the MoE layers' routing statistics (RouteContext::statistics)
  // A graph step: bounded capacity and graph randomness (RouteContext::bounded_capacity,
  // graph_random).
  bool graph = false;
  const std::vector<std::vector<RankShare>>* rank_shares = nullptr;  // TrainStep's
};

// Gradients zeroed in place; each micro-batch's forward (the method's objective) and backward,
// its values added into `out` (zeroed first, in place); the dense gradients' all-reduce, the
// clipping (norm into out.grad_norm), the update of training step `step`. The host's values
// (FLOPs, the learning rate, the method's metrics) go to `v`. Reads nothing from the device
// (on the static path with opt.graph).
void StepOps(Training& t, const std::vector<Batch>& micro, int64_t step, const StepOptions& opt,
             StepTensors& out, StepValues& v);

// The routers' step hooks (Note [Router step hooks]): after the update, their step statistics
// summed over ranks reach them.
void UpdateRouters(Training& t, int64_t step);

// `out` in v (one copy to the host); throws when the loss is not finite.
void ReadStepValues(const StepTensors& out, int64_t step, StepValues& v);

}  // namespace moebench
