// The dense baseline: no MoE layer. The blocks where the other methods put an MoE layer hold a
// plain FFN (ReLU, as every other block), in one of two documented sizings:
//   active  width d_ff: the same FLOPs per token as a top-1 MoE layer (Switch), so "method X
//           beats the dense Transformer" is compute-matched (THOR and SMoE-Dropout's baseline);
//   total   width num_experts * d_ff: the same parameters as the experts of that MoE layer (one
//           router fewer), so the comparison is parameter-matched; E times the FLOPs.
// No router, no capacity, no aux loss, no all-to-all: with several workers only the gradient
// all-reduce of the data-parallel weights is counted.
#pragma once

#include <memory>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"

namespace moebench {

std::vector<KnobSpec> DenseKnobSpecs();

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeDenseMethod(const Knobs& knobs);

class DenseMethod : public Method {
 public:
  explicit DenseMethod(const Knobs& knobs);
  // Never called: the model asks DenseWidth first (a dense method has no MoE layer).
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override;
  int64_t DenseWidth(int64_t d_ff, int64_t num_experts) const override;
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override;

 private:
  bool total_ = false;  // sizing = total
};

}  // namespace moebench
