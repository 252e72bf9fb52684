// Switch Transformer top-1 routing (Fedus, Zoph, Shazeer 2021). docs/METHODS.md section 1.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// Who keeps a slot when an expert overflows (knob `priority`).
enum class SwitchPriority {
  kOrder,   // token order (mesh-TF)
  kRandom,  // a random permutation per group (DeepSpeed), training only
};

struct SwitchOptions {
  double capacity_factor = 1.25;      // training
  double eval_capacity_factor = 2.0;  // inference
  int64_t min_capacity = 4;
  double aux_coef = 0.01;
  double z_coef = 0.0;
  double jitter = 0.01;  // multiplicative input jitter, training only
  SwitchPriority priority = SwitchPriority::kOrder;
};

SwitchOptions SwitchOptionsFromKnobs(const Knobs& knobs);
std::vector<KnobSpec> SwitchKnobSpecs();

// Top-1 routing of fp32 logits [T, E] with a given capacity. Pure: tests and `moebench route`
// call it directly; SwitchRouter calls it after computing the logits.
Routing RouteTop1(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  const SwitchOptions& opt, const RouteContext& ctx);

class SwitchRouter : public Router {
 public:
  SwitchRouter(int64_t d_model, int64_t num_experts, SwitchOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  int64_t CapacityFor(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const override;
  // Router logits in fp32, with the training jitter applied to the router input.
  at::Tensor Logits(const at::Tensor& x, const RouteContext& ctx);
  const SwitchOptions& options() const { return opt_; }
  int64_t num_experts() const { return num_experts_; }

 private:
  int64_t num_experts_;
  SwitchOptions opt_;
  at::Tensor weight_;  // [d, E], fp32
};

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeSwitchMethod(const Knobs& knobs);

// Switch-style router initialisation: truncated normal, std sqrt(0.1 / fan_in) (paper §2.4).
at::Tensor InitRouterWeight(int64_t d_model, int64_t num_experts);

}  // namespace moebench
