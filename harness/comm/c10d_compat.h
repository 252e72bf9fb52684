// The c10d spellings that differ between LibTorch 1.13 and 2.x (see harness/torch_compat.h for
// the rest). Included only by c10d_comm.cpp: the c10d headers are heavy.
#pragma once

#include "harness/torch_compat.h"

#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif

#ifdef MOEBENCH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#ifdef MOEBENCH_CUDA
#include <torch/csrc/cuda/nccl.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <cstdint>
#include <string>
#endif

namespace moebench::compat {

// 1.13: the backends are ProcessGroups. 2.x: they are c10d::Backend, wrapped by a ProcessGroup
// that dispatches on device; we call the backend directly (one backend per group).
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

#ifdef MOEBENCH_CUDA
// Note [NCCL headers]: ProcessGroupNCCL::Options is allocated by inline code compiled here
// (Options::create, make_intrusive), sized by the nccl.h this build includes (its ncclConfig_t
// grows from one NCCL release to the next), and filled by LibTorch's constructor, laid out by
// the nccl.h LibTorch was built with. When the two differ in their major.minor release, the
// constructor may write past the object: memory corruption, not an error. So an NCCL group is
// refused then, naming both versions. Returns "" when they agree (or this LibTorch does not
// report its NCCL version as 2.x does).
inline std::string NcclHeaderMismatch() {
#if MOEBENCH_TORCH_AT_LEAST(2, 0) && defined(NCCL_MAJOR)
  const uint64_t lib = torch::cuda::nccl::version();  // (major << 32) | (minor << 16) | patch
  const uint64_t ours = (static_cast<uint64_t>(NCCL_MAJOR) << 32) |
                        (static_cast<uint64_t>(NCCL_MINOR) << 16) |
                        static_cast<uint64_t>(NCCL_PATCH);
  if (lib == 0 || (lib >> 16) == (ours >> 16)) return "";
  auto text = [](uint64_t v) {
    return std::to_string(v >> 32) + "." + std::to_string((v >> 16) & 0xffff) + "." +
           std::to_string(v & 0xffff);
  };
  return "this build included nccl.h " + text(ours) + ", but LibTorch was built with NCCL " +
         text(lib) +
         ": ProcessGroupNCCL's options would be laid out differently (Note [NCCL headers]); "
         "build against LibTorch's NCCL headers (docs/gpu.md)";
#else
  return "";
#endif
}
#endif

}  // namespace moebench::compat
