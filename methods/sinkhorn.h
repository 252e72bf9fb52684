// Sinkhorn routing (S-BASE, Clark et al. 2022; Megatron-Core moe_utils.sinkhorn and
// TopKRouter.sinkhorn_load_balancing): in training the experts are the top-k of the
// Sinkhorn-balanced exp(logits), at inference the top-k of the logits; the combine weight is
// sigmoid (k = 1) or softmax (k > 1) of the original logits, unrenormalised, as Megatron does.
// METHODS-MODERN.md section 5.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

struct SinkhornOptions {
  int64_t k = 1;             // experts per token
  double tol = 1e-4;         // stop when mean |d1' - d1| <= tol (Megatron)
  int64_t max_iters = 1000;  // safety cap (Megatron has none)
  double eps = 1e-8;         // added to the row and column sums (Megatron)
  bool row_shift = true;     // subtract each row's max before exp (same fixed point)
  double z_coef = 0.0;       // router z-loss coefficient (Megatron allows it; no aux loss)
};

std::vector<KnobSpec> SinkhornKnobSpecs();
SinkhornOptions SinkhornOptionsFromKnobs(const Knobs& knobs);

struct SinkhornResult {
  at::Tensor plan;  // [n, E] P = diag(d0) exp(h) diag(d1): columns sum to 1/E, rows to ~1/n
  int64_t iterations = 0;
  bool converged = false;
};

// Megatron's sinkhorn(cost, tol) on fp32 CPU logits [n, E] (Note [Sinkhorn]).
SinkhornResult SinkhornPlan(const at::Tensor& logits, const SinkhornOptions& opt);

// Sinkhorn routing of fp32 logits [T, E] (differentiable): pads take no part in the plan and
// get no assignment; no capacity. k: opt.k in training, ctx.eval_k (if set) at inference.
Routing RouteSinkhorn(const at::Tensor& logits, const at::Tensor& pad, const RouteContext& ctx,
                      const SinkhornOptions& opt);

class SinkhornRouter : public Router {
 public:
  SinkhornRouter(int64_t d_model, int64_t num_experts, SinkhornOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  SinkhornOptions opt_;
  at::Tensor weight_;  // [d, E], fp32
};

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeSinkhornMethod(const Knobs& knobs);

}  // namespace moebench
