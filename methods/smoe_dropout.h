// SMoE-Dropout (Chen et al. 2023): a frozen random router, k growing linearly during
// training, experts that split the dense FFN evenly. docs/METHODS.md section 5.
#pragma once

#include <memory>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

struct SmoeDropoutOptions {
  int64_t k_min = 2;
  int64_t k_max = 0;           // 0: E
  int64_t schedule_steps = 0;  // 0: the run's max_steps
  int64_t eval_k = 0;          // 0: E ("self-slimmable": any k at inference)
};

std::vector<KnobSpec> SmoeDropoutKnobSpecs();
SmoeDropoutOptions SmoeDropoutOptionsFromKnobs(const Knobs& knobs);
// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeSmoeDropoutMethod(const Knobs& knobs);

// k(s) = clip(round((k_max - k_min) * s / T) + k_min, k_min, k_max) (the reference code's
// linear_increase).
int64_t SmoeScheduleK(int64_t step, int64_t total, int64_t k_min, int64_t k_max);

// Top-k over raw logits, weights = softmax over the k selected logits, no capacity. defer: see
// Routing::deferred.
Routing RouteTopKSoftmax(const at::Tensor& logits, const at::Tensor& pad, int64_t k,
                         bool defer = false);

class SmoeDropoutRouter : public Router {
 public:
  SmoeDropoutRouter(int64_t d_model, int64_t num_experts, SmoeDropoutOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  int64_t KFor(const RouteContext& ctx) const;

 private:
  int64_t num_experts_;
  SmoeDropoutOptions opt_;
  at::Tensor weight_, bias_;  // frozen: requires_grad = false
};

}  // namespace moebench
