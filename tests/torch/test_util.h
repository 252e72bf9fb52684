// Helpers shared by the torch tests.
#pragma once

#include <memory>
#include <vector>

#include <ATen/ATen.h>

#include "methods/router.h"

namespace moebench::testing {

// A router that returns hand-built assignments, one Routing per group (worker).
class FixedRouter : public Router {
 public:
  explicit FixedRouter(std::vector<Routing> per_group) : per_group_(std::move(per_group)) {}
  Routing Route(const at::Tensor&, const at::Tensor&, const RouteContext& ctx) override {
    return per_group_.at(ctx.group);
  }

 private:
  std::vector<Routing> per_group_;
};

// Assignments of tokens 0..n-1 of a group to the given experts, slots in order, weight 1.
inline Routing MakeRouting(const std::vector<int64_t>& experts, int64_t capacity) {
  Routing r;
  const int64_t n = static_cast<int64_t>(experts.size());
  r.token = at::arange(n, at::kLong);
  r.expert = at::tensor(experts, at::kLong);
  std::vector<int64_t> slots(n);
  std::vector<int64_t> used(64, 0);
  for (int64_t i = 0; i < n; ++i) slots[i] = used[experts[i]]++;
  r.slot = at::tensor(slots, at::kLong);
  r.weight = at::ones({n}, at::kFloat);
  r.capacity = capacity;
  r.choices = n;
  return r;
}

inline bool AllClose(const at::Tensor& a, const at::Tensor& b, double rtol = 1e-5,
                     double atol = 1e-5) {
  return a.sizes() == b.sizes() && at::allclose(a, b, rtol, atol);
}

}  // namespace moebench::testing
