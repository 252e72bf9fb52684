// Forced uniform routing: token i of a group goes to experts (i + j) mod E, j < k, weight 1/k.
// The best-case throughput baseline (perfect balance, no router); not a method to compare
// quality with.
#pragma once

#include <memory>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

std::vector<KnobSpec> UniformKnobSpecs();
// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeUniformMethod(const Knobs& knobs);

// The tensors are made on `device` (pad, if defined, must be there too). defer: see
// Routing::deferred.
Routing RouteUniform(int64_t t, const at::Tensor& pad, int64_t num_experts, int64_t k,
                     at::Device device = at::kCPU, bool defer = false);

class UniformRouter : public Router {
 public:
  UniformRouter(int64_t num_experts, int64_t k) : num_experts_(num_experts), k_(k) {}
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  int64_t num_experts_, k_;
};

}  // namespace moebench
