// Deliberate device-to-host reads on the training path go through HostRead, which counts them
// (per thread), so tests can pin how many a MoE layer makes: on a GPU each one waits for the
// work queued before it (Note [Host synchronisation] in harness/moe/moe_layer.cpp).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#ifdef MOEBENCH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace moebench {

inline int64_t& HostReadCount() {
  thread_local int64_t count = 0;
  return count;
}

// A contiguous CPU copy of `t` (t itself when it already is one), counted. On CUDA builds the
// read is exempt from PyTorch's sync debug mode, which tests/torch/test_gpu.cpp sets to raise an
// error on every other wait for the device.
inline at::Tensor HostRead(const at::Tensor& t) {
  ++HostReadCount();
#ifdef MOEBENCH_CUDA
  struct Exempt {
    c10::cuda::WarningState& state = c10::cuda::warning_state();
    c10::cuda::SyncDebugMode mode = state.get_sync_debug_mode();
    Exempt() { state.set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED); }
    ~Exempt() { state.set_sync_debug_mode(mode); }
  } exempt;
#endif
  return t.to(at::kCPU).contiguous();
}

}  // namespace moebench
