// Where a run computes, and in which precision.
//
// Note [Device and precision]: `device` = "cpu" | "cuda". On CUDA (builds against a CUDA
// LibTorch with -DMOEBENCH_CUDA=ON) the model, the optimizer state and every batch live on the
// GPU; a rank of a process group uses GPU LOCAL_RANK of its node and NCCL. Routing randomness is
// drawn on the CPU with the run's seeded generators and copied, so a seed routes the same way
// on both devices. `precision` = "fp32" | "bf16": bf16 autocasts the forward passes (training
// and evaluation) -- matmuls and the expert GEMMs in bf16, weights, gradients, the optimizer and
// the loss in fp32 -- and keeps the routers in fp32 (Switch Transformer's selective precision:
// the softmax over experts and the capacity decisions see fp32 logits). The MoE layer casts its
// input once, after routing, so the all-to-all moves bf16 rows (and counts 2 bytes per
// element). bf16 autocast works on CPU too (slower than fp32 there: it is for checking).
#pragma once

#include <string>

#include <ATen/ATen.h>

namespace moebench {

// "cpu" -> CPU; "cuda" -> cuda:<local_rank>. Throws std::invalid_argument naming the value
// for an unknown device, a CPU-only LibTorch, no visible GPU, or local_rank >= the GPUs seen.
at::Device ResolveDevice(const std::string& device, int local_rank);
// "fp32" -> false, "bf16" -> true; anything else throws std::invalid_argument naming it.
bool UsesBf16(const std::string& precision);
// Makes a CUDA device the current one (NCCL groups and the caching allocator use it); no-op for
// the CPU.
void MakeCurrentDevice(const at::Device& device);
// What a run records as its device: "cpu", or "cuda:0 (<GPU name>)".
std::string DeviceDescription(const at::Device& device);
// A tensor on `device` (no copy when it is already there); host tensors to a GPU are copied
// without waiting.
at::Tensor OnDevice(const at::Tensor& t, const at::Device& device);

}  // namespace moebench
