// Auxiliary-loss-free load balancing (Wang et al. 2024; DeepSeek-V3): the top-k pipeline of
// methods/topk.h with a per-expert selection bias b that enters the choice of experts only and
// moves after every optimizer step towards balance. METHODS-MODERN.md section 1.
#pragma once

#include <memory>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/step_hook.h"
#include "methods/topk.h"

namespace moebench {

// Knob `bias_update_rule` (Note [Bias update]).
enum class BiasRule {
  kSign,          // b_i += u * sign(mean_load - load_i)   (LFB Algorithm 1, DeepSeek-V3)
  kProportional,  // b_i += u * (mean_load - load_i)       (LFB Table 3, App. C for softmax)
};

struct AuxFreeOptions {
  TopkOptions topk;  // sigmoid, dropless and no aux loss by default
  double rate = 1e-3;
  BiasRule rule = BiasRule::kSign;
  bool center = false;       // torchtitan: subtract the update's mean (sum b stays 0)
  double freeze_frac = 0.0;  // no update in the last freeze_frac of the run's steps
  double seq_aux_coef = 0.0;
};

std::vector<KnobSpec> AuxFreeKnobSpecs();
AuxFreeOptions AuxFreeOptionsFromKnobs(const Knobs& knobs);
// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeAuxFreeMethod(const Knobs& knobs);

// The change of b for the step's global demand `counts` ([E], any dtype): fp32 [E].
at::Tensor BiasUpdate(const at::Tensor& counts, double rate, BiasRule rule, bool center);

// DeepSeek-V3's sequence-wise balance loss (Eq. 17-20), before its coefficient: the mean over
// the sequences with real tokens of sum_i f_i P_i, where for one sequence of T real tokens
// f_i = E / (k T) * #{t : i in topk(s_t, k)} (the unbiased scores) and P_i = mean_t s'_{i,t}.
// probs: [T, E] scores normalised over the experts (s'); sequences are consecutive runs of
// `per_sequence` rows (<= 0, or not dividing T: the whole group is one sequence).
at::Tensor SequenceBalanceLoss(const at::Tensor& probs, const at::Tensor& pad, int64_t k,
                               int64_t per_sequence);

class AuxFreeRouter : public TopkRouter, public StepHook {
 public:
  AuxFreeRouter(int64_t d_model, int64_t num_experts, AuxFreeOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  at::Tensor StepCounts() override;
  void AfterStep(const at::Tensor& global_counts, int64_t step, int64_t total_steps) override;
  const at::Tensor& bias() const { return bias_; }

 private:
  AuxFreeOptions af_;
  at::Tensor bias_;    // [E] fp32, a registered buffer: saved with the model, never trained
  at::Tensor counts_;  // [E] int64, demand since the last update (undefined: none yet); not saved
};

}  // namespace moebench
