#include "methods/capacity.h"

#include <algorithm>
#include <cmath>

namespace moebench {

int64_t ExpertCapacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                       int64_t min_capacity) {
  const double exact =
      capacity_factor * static_cast<double>(n_tokens) / static_cast<double>(num_experts);
  // Subtract a hair before ceil so that 1.25 * 8 / 2 = 5.000000001 stays 5.
  const int64_t c = static_cast<int64_t>(std::ceil(exact - 1e-9));
  return std::max<int64_t>(c, min_capacity);
}

int64_t NoDropCapacity(int64_t n_tokens) { return std::max<int64_t>(n_tokens, 1); }

int64_t Top1Capacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity) {
  return ExpertCapacity(capacity_factor, n_tokens, num_experts, min_capacity);
}

int64_t Top2Capacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity) {
  if (capacity_factor <= 0) return NoDropCapacity(n_tokens);
  return ExpertCapacity(2.0 * capacity_factor, n_tokens, num_experts, min_capacity);
}

int64_t TopkCapacity(double capacity_factor, int64_t k, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity) {
  return ExpertCapacity(static_cast<double>(k) * capacity_factor, n_tokens, num_experts,
                        min_capacity);
}

int64_t ExpertChoiceK(double c, int64_t n, int64_t num_experts) {
  const int64_t k = static_cast<int64_t>(
      std::llround(c * static_cast<double>(n) / static_cast<double>(num_experts)));
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(n, 1));
}

}  // namespace moebench
