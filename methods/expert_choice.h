// Expert Choice routing (Zhou et al. 2022): each expert picks its top-k tokens of the group.
// Encoder MoE layers only; decoder MoE layers use GShard top-2, because EC would see future
// tokens (docs/METHODS.md section 3).
#pragma once

#include <memory>
#include <vector>

#include "methods/capacity.h"
#include "methods/gshard.h"
#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

struct ExpertChoiceOptions {
  double capacity_factor = 2.0;   // c: average experts per token; k = round(c * n / E)
  int64_t cap = 0;                // EC-CAP b: at most b experts per token (0 = off)
  double cap_lambda = 1e-3;       // entropy regularisation of the capped assignment
  int64_t cap_iterations = 1000;  // most Dykstra sweeps per lambda stage
  double cap_tolerance = 1e-3;    // constraint violation (tokens) at which the sweeps stop
};

struct CappedResult {
  at::Tensor assignment;   // A [E, n]
  double residual = 0;     // max |row sum - k| or column sum - b above 0, in tokens
  int64_t iterations = 0;  // sweeps over all lambda stages
  bool converged = false;  // residual <= tolerance
};

std::vector<KnobSpec> ExpertChoiceKnobSpecs();
ExpertChoiceOptions ExpertChoiceOptionsFromKnobs(const Knobs& knobs);
// The registry's factory (methods/registry.cpp): Expert Choice in the encoder, GShard top-2 in
// the decoder.
std::unique_ptr<Method> MakeExpertChoiceMethod(const Knobs& knobs);

// Experts choose tokens from fp32 logits [n, E]; padding is never picked before a real token
// and never gets an assignment. n_real: the real tokens in the group when the host knows it
// (RealTokens); -1 counts them from pad (a host read).
Routing RouteExpertChoice(const at::Tensor& logits, const at::Tensor& pad, int64_t k,
                          const ExpertChoiceOptions& opt, int64_t n_real = -1);

// The capped assignment A [E, n]: max <S^T, A> + lambda H(A) subject to row sums k, column
// sums <= b, 0 <= A <= 1, by Dykstra's alternating KL projections in log space on a lambda
// schedule, to `tolerance` or `iterations` sweeps per stage (Note [Capped expert choice]).
CappedResult CappedAssignment(const at::Tensor& scores_t, int64_t k, int64_t b, double lambda,
                              int64_t iterations, double tolerance);

class ExpertChoiceRouter : public Router {
 public:
  ExpertChoiceRouter(int64_t d_model, int64_t num_experts, ExpertChoiceOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  // Each expert's k picks, at most the group's rows (RouteExpertChoice).
  int64_t CapacityFor(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const override;

 private:
  int64_t num_experts_;
  ExpertChoiceOptions opt_;
  at::Tensor weight_;
};

}  // namespace moebench
