// BASE layers (Lewis et al. 2021; fairseq fairseq/modules/base_layer.py): in training a balanced
// linear assignment of the group's tokens to the experts (every expert exactly n/E tokens,
// maximising the summed token-expert affinities), at inference greedy top-1; the expert output
// is weighted by sigmoid(affinity). METHODS-MODERN.md section 4.
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

// How the training assignment is solved (knob `base_assign`).
enum class BaseAssign {
  kAuction,  // fairseq's auction (libbase balanced_assignment), extended to quotas
  kExact,    // an exact min-cost assignment (successive shortest paths)
};

struct BaseOptions {
  BaseAssign assign = BaseAssign::kAuction;
  double auction_eps_frac = 1.0 / 50;  // bid increment eps = (max - min) * frac ...
  double auction_min_eps = 1e-4;       // ... at least this
  int64_t auction_max_iters = 100;     // rounds before the fast, suboptimal finish
  double centroid_gain = 0.1;          // orthogonal initialisation gain of the expert centroids
};

std::vector<KnobSpec> BaseKnobSpecs();
BaseOptions BaseOptionsFromKnobs(const Knobs& knobs);

// Tokens per expert when n tokens are shared by E experts: floor(n/E), plus one for the first
// n mod E experts (exactly n/E each when E divides n).
std::vector<int64_t> BalancedQuotas(int64_t n, int64_t num_experts);

struct AssignStats {
  int64_t rounds = 0;     // auction rounds
  bool fallback = false;  // the auction did not finish in its round cap: solved exactly
};

// Expert of each row of `scores` ([n, E], CPU) such that expert e gets exactly quota[e] rows
// (sum quota = n) and the summed scores of the chosen entries is as large as the method finds.
// Non-finite scores count as the smallest finite one (fairseq). Note [BASE assignment].
std::vector<int64_t> AuctionAssign(const at::Tensor& scores, const std::vector<int64_t>& quota,
                                   const BaseOptions& opt, AssignStats* stats = nullptr);
std::vector<int64_t> ExactAssign(const at::Tensor& scores, const std::vector<int64_t>& quota);

// BASE routing of the affinities [T, E] (fp32, differentiable): balanced in training (pads
// excluded, quotas over the real tokens), greedy at inference (the ctx.eval_k best experts with
// any-k evaluation); weight sigmoid(affinity) of the chosen expert; no capacity, no aux loss.
Routing RouteBase(const at::Tensor& affinities, const at::Tensor& pad, const RouteContext& ctx,
                  const BaseOptions& opt);

class BaseRouter : public Router {
 public:
  BaseRouter(int64_t d_model, int64_t num_experts, BaseOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  BaseOptions opt_;
  at::Tensor centroids_;  // [E, d] expert embeddings w_e, fp32
};

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeBaseMethod(const Knobs& knobs);

}  // namespace moebench
