// Inverse square-root learning-rate schedule with linear warm-up (Vaswani et al.; fairseq's
// inverse_sqrt): lr(s) = base * min(s / warmup, sqrt(warmup / s)), s counted from 1.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace moebench {

inline double InverseSqrtLr(double base, int64_t step, int64_t warmup) {
  const double s = static_cast<double>(std::max<int64_t>(step, 1));
  if (warmup <= 0) return base / std::sqrt(s);
  const double w = static_cast<double>(warmup);
  return base * std::min(s / w, std::sqrt(w / s));
}

}  // namespace moebench
