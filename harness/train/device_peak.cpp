#include "harness/train/device_peak.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <ATen/Parallel.h>

#ifdef MOEBENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace moebench {

namespace {

struct SheetRow {
  const char* match;  // a substring of the driver's name
  double bf16, fp32;  // dense FLOP/s, no sparsity
};

// Vendors' data sheets (SXM parts where the name does not say PCIe or NVL; the more specific
// names first). V100 has no bf16: its fp16 tensor-core peak stands in (the papers' V100 runs
// trained in fp16).
const SheetRow kSheet[] = {
    {"H200 NVL", 835.5e12, 60.0e12},  {"H200", 989.4e12, 66.9e12}, {"H100 NVL", 835.5e12, 60.0e12},
    {"H100 PCIe", 756.0e12, 51.2e12}, {"H100", 989.4e12, 66.9e12}, {"A100", 312.0e12, 19.5e12},
    {"V100", 125.0e12, 15.7e12},
};

}  // namespace

double DataSheetPeak(const std::string& gpu_name, bool bf16) {
  for (const SheetRow& row : kSheet) {
    if (gpu_name.find(row.match) != std::string::npos) return bf16 ? row.bf16 : row.fp32;
  }
  return 0.0;
}

double MeasuredGemmFlops(const at::Device& device, at::ScalarType dtype, int64_t n, int reps) {
  // Constant operands: no draw from the global generator, which seeds the model's weights next
  // (a GEMM's speed does not depend on the values, as long as they are normal numbers).
  const at::Tensor a = at::full({n, n}, 0.5, at::TensorOptions().device(device).dtype(dtype));
  const at::Tensor b = at::full({n, n}, 0.25, at::TensorOptions().device(device).dtype(dtype));
  auto sync = [&] {
#ifdef MOEBENCH_CUDA
    if (device.is_cuda()) at::cuda::getCurrentCUDAStream().synchronize();
#endif
  };
  at::Tensor c = at::mm(a, b);  // untimed: first-call set-up, page faults
  sync();
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    sync();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, 2.0 * static_cast<double>(n * n * n) / s);
  }
  return best;
}

DevicePeak FindDevicePeak(const at::Device& device, bool bf16) {
  const char* precision = bf16 ? "bf16" : "fp32";
  char buf[160];
#ifdef MOEBENCH_CUDA
  if (device.is_cuda()) {
    const std::string name = at::cuda::getDeviceProperties(device.index())->name;
    if (const double p = DataSheetPeak(name, bf16); p > 0) {
      std::snprintf(buf, sizeof(buf), "data sheet: %s, dense %s", name.c_str(), precision);
      return {p, buf};
    }
  }
#endif
  // bf16 GEMMs on a CPU run an order of magnitude slower: a smaller product keeps it short.
  const int64_t n = bf16 && !device.is_cuda() ? 512 : 1024;
  const double p = MeasuredGemmFlops(device, bf16 ? at::kBFloat16 : at::kFloat, n, 5);
  std::snprintf(buf, sizeof(buf), "measured: best of 5 %s GEMMs %lldx%lld on %d thread(s)",
                precision, static_cast<long long>(n), static_cast<long long>(n),
                device.is_cpu() ? at::get_num_threads() : 0);
  return {p, buf};
}

double Mfu(double flops_per_step, double step_seconds, double peak_flops) {
  if (flops_per_step <= 0 || step_seconds <= 0 || peak_flops <= 0) return 0.0;
  return flops_per_step / step_seconds / peak_flops;
}

double PeakMemoryBytes([[maybe_unused]] const at::Device& device) {
#ifdef MOEBENCH_CUDA
  if (device.is_cuda()) {
    return static_cast<double>(
        c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak);
  }
#endif
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0;  // kilobytes on Linux
}

}  // namespace moebench
