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
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace moebench::compat {

// 1.13: the backends are ProcessGroups. 2.x: they are c10d::Backend, wrapped by a ProcessGroup
// that dispatches on device; we call the backend directly (one backend per group).
#if MOEBENCH_TORCH_AT_LEAST(2, 0)
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

}  // namespace moebench::compat
