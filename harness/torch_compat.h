// The one place for calls whose spelling differs between LibTorch versions.
// moebench builds against Debian's LibTorch 1.13 (CPU) and against the LibTorch inside a newer
// PyTorch with CUDA (2.x). Anything version-specific goes here, behind a small function.
#pragma once

#include <stdexcept>
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

// Whether the linked LibTorch has at::_grouped_mm, differentiable (2.9 and later): one kernel
// for the GEMMs of every group (on sm90 in bf16 without reading the offsets on the host).
inline constexpr bool kHaveGroupedMm = MOEBENCH_TORCH_AT_LEAST(2, 9);

// a [N, k] (rows grouped), b [G, k, n], offs int32 [G] on a's device (the groups' cumulative
// row ends): rows [offs[g-1], offs[g]) of a times b[g], [N, n]. Throws without kHaveGroupedMm.
inline at::Tensor GroupedMm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& offs) {
#if MOEBENCH_TORCH_AT_LEAST(2, 9)
  return at::_grouped_mm(a, b, offs);
#else
  (void)a;
  (void)b;
  (void)offs;
  throw std::logic_error("at::_grouped_mm needs LibTorch 2.9 or later");
#endif
}

}  // namespace moebench::compat
