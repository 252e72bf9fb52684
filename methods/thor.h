// THOR: stochastic experts with a consistency-regularised objective (Zuo et al. 2022).
// docs/METHODS.md section 4.
#pragma once

#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// Which tokens share one random expert in training (knob `train_granularity`).
enum class ThorGranularity {
  kBatch,  // one expert per layer per forward pass for the whole batch (the authors' code)
  kToken,  // one draw per token (opt-in)
};

// How experts are drawn at inference (knob `inference`).
enum class ThorInference {
  kSentence,  // one expert per sentence, stable through decoding
  kToken,     // one per token
};

struct ThorOptions {
  double alpha = 5.0;  // consistency weight
  ThorGranularity train_granularity = ThorGranularity::kBatch;
  ThorInference inference = ThorInference::kSentence;
  bool resample_each_step = false;  // fairseq code: a new draw at every decoding step
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

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeThorMethod(const Knobs& knobs);

class ThorMethod : public Method {
 public:
  explicit ThorMethod(const Knobs& knobs);
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override;
  // loss = (CE1 + CE2 + alpha * SKL) / ntokens, two passes with independent expert draws.
  ObjectiveOutput Objective(const ForwardFn& forward) const override;
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override;

 private:
  ThorOptions opt_;
};

}  // namespace moebench
