// The one place for calls whose spelling differs between LibTorch versions.
// moebench builds against Debian's LibTorch 1.13 (CPU) and against the LibTorch inside a newer
// PyTorch with CUDA (2.x). Anything version-specific goes here, behind a small function.
#pragma once

#include <string>

#include <ATen/ATen.h>
#include <torch/version.h>

#define MOEBENCH_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||           \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace moebench::compat {

inline std::string TorchVersion() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Stable sort of a 1-D tensor; returns the permutation. (`at::sort` gained the `stable`
// overload in 1.9; the argument order changed in 2.x's schema, so both go through here.)
inline at::Tensor StableArgsort(const at::Tensor& keys) {
  return std::get<1>(at::sort(keys, /*stable=*/true, /*dim=*/0, /*descending=*/false));
}

// Stable descending sort along `dim`: the permutation, ties in index order.
inline at::Tensor StableArgsortDescending(const at::Tensor& keys, int64_t dim) {
  return std::get<1>(at::sort(keys, /*stable=*/true, dim, /*descending=*/true));
}

}  // namespace moebench::compat
