// Gating Dropout and Gate-Expert-Drop (Liu et al. 2022): with probability p per (MoE layer,
// step), drawn identically on every worker, the layer skips its all-to-alls and each token
// goes to the local expert with its gated expert's local index (fairseq `moe_local_drop`);
// with gate_expert_drop the layer instead adds nothing. docs/METHODS.md section 6.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// The base router (knob `base`).
enum class GatingBase {
  kSwitch,  // top-1 (the paper's)
  kGShard,  // top-2
};

struct GatingDropoutOptions {
  double p = 0.3;
  bool gate_expert_drop = false;
  bool ignore_gate_weight = false;
  GatingBase base = GatingBase::kSwitch;
};

std::vector<KnobSpec> GatingDropoutKnobSpecs();
GatingDropoutOptions GatingDropoutOptionsFromKnobs(const Knobs& knobs);
// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeGatingDropoutMethod(const Knobs& knobs);

// The shared coin: true when layer ctx.layer drops at ctx.step (same on every worker).
bool GatingDropoutCoin(const RouteContext& ctx, double p);

// Rewrites a base routing so every assignment stays on the token's worker: expert e -> the
// local expert with index e mod E_loc; slots stay distinct ((e / E_loc) * C + slot).
void KeepOnLocalWorker(Routing& r, const RouteContext& ctx, int64_t num_experts);

class GatingDropoutRouter : public Router {
 public:
  GatingDropoutRouter(std::shared_ptr<Router> base, int64_t num_experts, GatingDropoutOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  // The base router's; on a dropped step (the coin) W times it (KeepOnLocalWorker), 0 when the
  // experts are skipped too or when the base routes without a capacity (then the slots set it).
  int64_t CapacityFor(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const override;

 private:
  std::shared_ptr<Router> base_;
  int64_t num_experts_;
  GatingDropoutOptions opt_;
};

}  // namespace moebench
