#include "harness/train/device.h"

#include <stdexcept>

#include <torch/cuda.h>

#ifdef MOEBENCH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace moebench {

at::Device ResolveDevice(const std::string& device, [[maybe_unused]] int local_rank) {
  if (device == "cpu") return at::Device(at::kCPU);
  if (device != "cuda") {
    throw std::invalid_argument("device: unknown device '" + device + "' (known: cpu, cuda)");
  }
#ifndef MOEBENCH_CUDA
  throw std::invalid_argument(
      "device 'cuda': this moebench was built without CUDA (configure against a CUDA LibTorch "
      "with -DMOEBENCH_CUDA=ON: docs/gpu.md)");
#else
  if (!torch::cuda::is_available()) {
    throw std::invalid_argument("device 'cuda': no CUDA device is visible to this process");
  }
  const int count = static_cast<int>(torch::cuda::device_count());
  if (local_rank < 0 || local_rank >= count) {
    throw std::invalid_argument("device 'cuda': local rank " + std::to_string(local_rank) +
                                " but only " + std::to_string(count) +
                                " GPUs are visible (one GPU per rank of a node)");
  }
  return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(local_rank));
#endif
}

bool UsesBf16(const std::string& precision) {
  if (precision == "fp32") return false;
  if (precision == "bf16") return true;
  throw std::invalid_argument("precision: unknown precision '" + precision +
                              "' (known: fp32, bf16)");
}

void MakeCurrentDevice([[maybe_unused]] const at::Device& device) {
#ifdef MOEBENCH_CUDA
  if (device.is_cuda()) c10::cuda::set_device(device.index());
#endif
}

std::string DeviceDescription(const at::Device& device) {
#ifdef MOEBENCH_CUDA
  if (device.is_cuda()) {
    return device.str() + " (" + at::cuda::getDeviceProperties(device.index())->name + ")";
  }
#endif
  return device.str();
}

at::Tensor OnDevice(const at::Tensor& t, const at::Device& device) {
  if (!t.defined() || t.device() == device) return t;
  // From pinned host memory the copy is asynchronous; from pageable memory it waits.
  if (t.device().is_cpu() && device.is_cuda()) return t.pin_memory().to(device, true);
  return t.to(device, /*non_blocking=*/true);
}

}  // namespace moebench
