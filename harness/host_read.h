// Deliberate device-to-host reads on the training path go through HostRead, which counts them
// (per thread), so tests can pin how many a MoE layer makes: on a GPU each one waits for the
// work queued before it (Note [Host synchronisation] in harness/moe/moe_layer.cpp).
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

namespace moebench {

inline int64_t& HostReadCount() {
  thread_local int64_t count = 0;
  return count;
}

// A contiguous CPU copy of `t` (t itself when it already is one), counted.
inline at::Tensor HostRead(const at::Tensor& t) {
  ++HostReadCount();
  return t.to(at::kCPU).contiguous();
}

}  // namespace moebench
