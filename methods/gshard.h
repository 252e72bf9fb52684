// GShard top-2 routing (Lepikhin et al. 2020). docs/METHODS.md section 2.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// How the second expert is chosen and kept (knob `second_policy`).
enum class SecondPolicy {
  kRandom,    // the argmax without the first choice, kept w.p. min(1, 2 * g2n) (paper)
  kAll,       // the argmax without the first choice, always kept
  kSampling,  // a Gumbel-max sample without the first choice (DeepSpeed, fairseq)
};

// When gates are normalised over the two choices (knob `normalize`).
enum class GateNormalize {
  kBefore,  // before capacity drops them (paper)
  kAfter,   // over the surviving choices (fairseq)
};

struct GShardOptions {
  double capacity_factor = 1.0;       // per-group capacity ceil(2 * cf * S / E)
  double eval_capacity_factor = 0.0;  // 0: inference never drops
  int64_t min_capacity = 0;
  double aux_coef = 0.01;
  double z_coef = 0.0;
  SecondPolicy second_policy = SecondPolicy::kRandom;
  GateNormalize normalize = GateNormalize::kBefore;
  bool stochastic_eval = false;  // apply the second-expert policy at inference too
};

std::vector<KnobSpec> GShardKnobSpecs();
GShardOptions GShardOptionsFromKnobs(const Knobs& knobs);
// The two string knobs parsed (errors name the knob); shared with gating_dropout's gshard base.
SecondPolicy ParseSecondPolicy(const std::string& value);
GateNormalize ParseGateNormalize(const std::string& value);
// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeGShardMethod(const Knobs& knobs);

// Top-2 routing of fp32 logits [S, E] for one group with the given capacity.
Routing RouteTop2(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  const GShardOptions& opt, const RouteContext& ctx);

class GShardRouter : public Router {
 public:
  GShardRouter(int64_t d_model, int64_t num_experts, GShardOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  int64_t CapacityFor(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const override;

 private:
  int64_t num_experts_;
  GShardOptions opt_;
  at::Tensor weight_;  // [d, E] fp32
};

}  // namespace moebench
