// Bytes of live tensors over a stretch of code, on the CPU and on a GPU (Note [Tensor memory]).
#pragma once

#include <cstdint>
#include <memory>
#include <utility>

#include <ATen/ATen.h>

namespace c10 {
class DebugInfoGuard;
}

namespace moebench {

// Note [Tensor memory]
// What a training step needs in device memory beyond what it holds between steps (weights,
// their gradients, the optimizer's moments): its activations, the tensors autograd saves for
// the backward pass and the temporaries of each op. TensorMemoryScope measures the peak of that
// above the bytes live when the scope began:
//   - CUDA: the caching allocator's peak of allocated bytes (reset when the scope begins) minus
//     the bytes allocated then. Whole blocks as the allocator rounds them (512 B multiples).
//   - CPU: LibTorch's CPU allocator reports each allocation and free to a memory-reporting hook
//     installed on this thread for the scope (the one the profiler's memory view uses); the
//     autograd engine carries it to its threads. Exact tensor bytes. Allocations made before
//     the scope are not seen, nor their frees.
// The same ops allocate the same tensors on either device, so a step measured on the CPU says
// what it will need on a GPU in the same precision, up to the GPU's libraries' workspaces
// (cuBLAS) and the caching allocator's rounding: the GPU batch defaults are sized from it
// (Note [GPU batch defaults] in harness/spec/resolve.h). Two cautions: the CPU hook sits where
// the profiler keeps its state, so do not profile inside a scope; and on CUDA a scope resets the
// allocator's peak, which `peak_mem_mb` (PeakMemoryBytes) also reads.
class TensorMemoryScope {
 public:
  explicit TensorMemoryScope(const at::Device& device);
  ~TensorMemoryScope();
  TensorMemoryScope(const TensorMemoryScope&) = delete;
  TensorMemoryScope& operator=(const TensorMemoryScope&) = delete;

  // Bytes allocated in the scope and still live.
  int64_t LiveBytes() const { return LiveAndPeak().first; }
  // The most bytes allocated in the scope that were live at once.
  int64_t PeakBytes() const { return LiveAndPeak().second; }

  struct Reporter;  // the CPU hook (tensor_memory.cpp)

 private:
  std::pair<int64_t, int64_t> LiveAndPeak() const;

  at::Device device_;
  int64_t cuda_start_ = 0;
  std::shared_ptr<Reporter> reporter_;
  std::unique_ptr<c10::DebugInfoGuard> guard_;
};

}  // namespace moebench
