// Shared pieces of the benchmark suite: run configuration, the measured environment, timing
// and medians, the equal-FLOP dense FFN yardstick and a top-2 router for the layer matrix.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "methods/router.h"

namespace moebench::bench {

// How the suite runs: the full matrix (default), the one-iteration smoke run (`--smoke`, small
// shapes, no warm-up, used by tests/e2e/bench_smoke.sh), or the long run (`--long`: adds the
// base-size training step).
struct BenchConfig {
  bool smoke = false;
  bool long_mode = false;
  int threads = 2;
  int warmup = 2;           // untimed steps before measuring
  int iterations = 10;      // measured steps; counters report their median
  std::string profile_dir;  // non-empty: one extra step per side under the LibTorch profiler
  // --device=cpu|cuda and --precision=fp32|bf16 (Note [Device and precision]): where the
  // router, layer and training-step families run, and whether their forward passes autocast
  // to bf16. The dispatch and all-to-all families stay on the CPU in fp32.
  at::Device device = at::kCPU;
  bool bf16 = false;
  // The training-step family: --train-sizes=tiny,small,... (default: tiny, small unless
  // --smoke, base with --long) and --train-tokens=N,...,gpu (budgets besides 2048 target
  // tokens; gpu, stored as 0: each size's GPU micro-batch, Note [GPU batch defaults]).
  // --train-length=L: the sentences' length (default 32; attention memory grows with it).
  std::vector<std::string> train_sizes;
  std::vector<int64_t> train_tokens;
  int64_t train_length = 32;
};

// Re-executes the process once with the environment of docs/PERFORMANCE.md's method (thread-wait
// policy and glibc heap settings are read at library load), keeping values the user set.
void EnsureBenchEnvironment(char** argv);
// Records the environment and settings in Google Benchmark's context block (JSON/console).
void RecordBenchContext(const BenchConfig& config);

double NowMs();
// Runs `step` and returns its wall-clock in ms; on a GPU the device is synchronised before and
// after, so the time includes the work the step queued.
double TimedMs(const BenchConfig& config, const std::function<void()>& step);
double Median(std::vector<double> values);
// Minor page faults of the process so far (getrusage): first touches of fresh memory, ~12 us
// each on these virtual machines (docs/PERFORMANCE.md), so a step that faults is a step that pays.
int64_t MinorFaults();
// Peak resident set size of the process so far, MiB (getrusage).
double PeakRssMb();
// The ATen ops that do work in one run of `step`, on every thread: leaf ops (no op called
// inside them), views and allocations without a kernel left out (view, narrow, transpose,
// expand, empty, ...). On a GPU each is about one kernel launch, which is what a step that waits
// on the host pays per op (docs/gpu.md), so the count is the CPU's measure of "fewer kernels".
int64_t KernelOps(const std::function<void()>& step);

// The dense FFN of the same active FLOPs: d -> hidden -> d, ReLU, biases, fp32; parameters
// require grad. Forward and backward as a training step does them.
struct DenseFfn {
  DenseFfn(int64_t d_model, int64_t d_hidden, at::Device device = at::kCPU);
  at::Tensor Forward(const at::Tensor& x) const;
  void ClearGrads();
  at::Tensor w1, b1, w2, b2;
};

// GShard-style top-2 with a fixed capacity: first choices take slots before second choices,
// combine weights are the two probabilities renormalised, switch-style aux loss on the first
// choice. The layer matrix's top-2 yardstick until the gshard method is in the registry.
class Top2Router : public Router {
 public:
  Top2Router(int64_t d_model, int64_t num_experts, double capacity_factor);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  int64_t num_experts_;
  double capacity_factor_;
  at::Tensor weight_;
};

// With --profile=DIR, runs `step` once more under the LibTorch profiler and writes a Chrome
// trace DIR/<benchmark name>.<part>.json (summarise with bench/profile_summary.py). The timed
// steps are never profiled.
void ProfileStep(const BenchConfig& config, const std::string& benchmark_name,
                 const std::string& part, const std::function<double()>& step);

// Nulls the gradient of every tensor (as optimizer.zero_grad(set_to_none) does), so each
// measured step allocates and writes its gradients like a training step.
void ClearGrads(const std::vector<at::Tensor>& tensors);

}  // namespace moebench::bench
