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
  std::unique_ptr<torch::optim::Adam> optimizer;
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
// clipping, learning rate, Adam. Throws when the loss is not finite. The MoE layers compute
// their routing statistics only at the steps whose metrics are logged (WindowClosesAt).
// rank_shares: on a process group, every rank's share of each micro-batch (RankShares of the
// step's whole batch), which the static-shape MoE path needs; empty elsewhere.
StepValues TrainStep(Training& t, const Batch& batch, int64_t step,
                     const std::vector<std::vector<RankShare>>& rank_shares = {});

}  // namespace moebench
