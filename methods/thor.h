// THOR: stochastic experts with a consistency-regularised objective (Zuo et al. 2022).
// METHODS.md section 4.
#pragma once

#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

struct ThorOptions {
  double alpha = 5.0;                       // consistency weight
  std::string train_granularity = "batch";  // batch (the authors' code) | token (opt-in)
  std::string inference = "sentence";       // sentence | token
  bool resample_each_step = false;          // fairseq code: a new draw at every decoding step
};

std::vector<KnobSpec> ThorKnobSpecs();
ThorOptions ThorOptionsFromKnobs(const Knobs& knobs);

// Symmetric KL, summed over non-pad target positions and the vocabulary:
// 0.5 * sum_t sum_v (p - q)(log p - log q), p, q = softmax of the two passes' logits.
at::Tensor SymmetricKl(const at::Tensor& logits_p, const at::Tensor& logits_q,
                       const at::Tensor& mask);

class ThorRouter : public Router {
 public:
  ThorRouter(int64_t num_experts, ThorOptions opt) : num_experts_(num_experts), opt_(opt) {}
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  int64_t num_experts_;
  ThorOptions opt_;
};

class ThorMethod : public Method {
 public:
  explicit ThorMethod(const Knobs& knobs);
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override;
  // loss = (CE1 + CE2 + alpha * SKL) / ntokens, two passes with independent expert draws.
  ObjectiveOutput Objective(const ForwardFn& forward) const override;

 private:
  ThorOptions opt_;
};

}  // namespace moebench
