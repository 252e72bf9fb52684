// FLOPs of the expert FFNs, counted by the MoE layer as it runs (Note [Compute model] in
// harness/model/compute_model.h, which uses it too). Torch-free.
#pragma once

#include <cstdint>

namespace moebench {

// Forward FLOPs of `rows` rows through experts of width d -> hidden -> d: two products of
// 2 FLOPs per multiply-add.
inline double ExpertForwardFlops(int64_t rows, int64_t d_model, int64_t hidden) {
  return 2.0 * 2.0 * static_cast<double>(rows) * static_cast<double>(d_model) *
         static_cast<double>(hidden);
}

}  // namespace moebench
