// E feed-forward experts stored as stacked weights: W1 [E, d, h], b1 [E, h], W2 [E, h, d],
// b2 [E, d]; E_e(x) = relu(x W1_e + b1_e) W2_e + b2_e.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace moebench {

// How Experts::ForwardGrouped runs the experts of rows in `dtype` (the autocast dtype its GEMMs
// run in) on `device` with this thread's intra-op thread count: "grouped_mm" (LibTorch's
// grouped GEMM, one kernel per GEMM for every expert: Note [Grouped GEMM experts] in
// experts.cpp), "concurrent" (one expert per thread, Note [Experts in parallel]) or "serial".
// Recorded with runs and benchmarks. It changes timings, not results: bitwise equal outputs and
// gradients between the last two with OpenBLAS 0.3.21 (measured at d 64-512, E 16); the unit
// tests compare them to rounding. d_model, d_hidden: the experts' widths (grouped_mm needs
// multiples of 8).
std::string ExpertSchedule(const at::Device& device, at::ScalarType dtype = at::kFloat,
                           int64_t d_model = 8, int64_t d_hidden = 8);

class Experts : public torch::nn::Module {
 public:
  Experts(int64_t num_experts, int64_t d_model, int64_t d_hidden);
  // From given weights (a shard of a larger set, or a gathered copy): w1 [E, d, h], b1 [E, h],
  // w2 [E, h, d], b2 [E, d]. Draws no random numbers.
  Experts(at::Tensor w1, at::Tensor b1, at::Tensor w2, at::Tensor b2);
  // x: rows grouped by expert, counts[e] rows for expert e, in expert order (the counts must
  // add up to the rows of x). Returns the expert outputs in the same row order. Experts with no
  // rows cost nothing and get zero gradient. See Note [Grouped experts backward].
  at::Tensor ForwardGrouped(const at::Tensor& x, const std::vector<int64_t>& counts) const;
  // The same as two grouped GEMMs (Note [Grouped GEMM experts]): at::_grouped_mm with
  // `library` (a CUDA device, LibTorch 2.9+), else each GEMM as one at::mm per expert (which
  // the CPU tests compare with ForwardGrouped). Autograd differentiates it.
  at::Tensor ForwardGroupedMm(const at::Tensor& x, const std::vector<int64_t>& counts,
                              bool library) const;
  // One expert on arbitrary rows (THOR's single-expert passes, tests).
  at::Tensor ForwardOne(int64_t expert, const at::Tensor& x) const;
  // Padded batched form [E, C, d] -> [E, C, d] (the einsum oracle's expert step).
  at::Tensor ForwardBatched(const at::Tensor& x) const;

  int64_t num_experts() const { return num_experts_; }
  int64_t d_model() const { return d_model_; }
  int64_t d_hidden() const { return d_hidden_; }
  at::Tensor w1, b1, w2, b2;

 private:
  int64_t num_experts_, d_model_, d_hidden_;
};

}  // namespace moebench
