#include "harness/train/tensor_memory.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include "harness/torch_compat.h"

#ifdef MOEBENCH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace moebench {

// The allocator calls it for every CPU allocation (alloc_size > 0) and free (< 0) made while it
// is installed; several threads may (autograd's), hence the lock.
struct TensorMemoryScope::Reporter : public c10::MemoryReportingInfoBase {
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
  using Total = size_t;  // 2.x reports totals as size_t
#else
  using Total = int64_t;
#endif
  void reportMemoryUsage(void* ptr, int64_t alloc_size, Total /*total_allocated*/,
                         Total /*total_reserved*/, c10::Device device) override {
    if (device.type() != c10::DeviceType::CPU || ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mu);
    if (alloc_size > 0) {
      sizes[ptr] = alloc_size;
      live += alloc_size;
      peak = std::max(peak, live);
    } else {
      // A free of a block allocated before the scope: not counted either way.
      const auto it = sizes.find(ptr);
      if (it == sizes.end()) return;
      live -= it->second;
      sizes.erase(it);
    }
  }
  bool memoryProfilingEnabled() const override { return true; }

  mutable std::mutex mu;
  std::unordered_map<void*, int64_t> sizes;
  int64_t live = 0, peak = 0;
};

TensorMemoryScope::TensorMemoryScope(const at::Device& device) : device_(device) {
#ifdef MOEBENCH_CUDA
  if (device_.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    alloc::resetPeakStats(device_.index());
    cuda_start_ = alloc::getDeviceStats(device_.index()).allocated_bytes[0].current;
    return;
  }
#endif
  reporter_ = std::make_shared<Reporter>();
  guard_ = std::make_unique<c10::DebugInfoGuard>(c10::DebugInfoKind::PROFILER_STATE, reporter_);
}

TensorMemoryScope::~TensorMemoryScope() = default;

std::pair<int64_t, int64_t> TensorMemoryScope::LiveAndPeak() const {
#ifdef MOEBENCH_CUDA
  if (device_.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    const auto& bytes = stats.allocated_bytes[0];  // into the copy above
    return {bytes.current - cuda_start_, bytes.peak - cuda_start_};
  }
#endif
  std::lock_guard<std::mutex> lock(reporter_->mu);
  return {reporter_->live, reporter_->peak};
}

}  // namespace moebench
