#include "methods/expert_choice.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench {

std::vector<KnobSpec> ExpertChoiceKnobSpecs() {
  return {
      {"capacity_factor", "2.0", "c: average experts per token, k = round(c*n/E) (EC-CF2)",
       "paper"},
      {"cap", "0", "EC-CAP b: at most b experts per token (entropy-regularised); 0 = off",
       "paper section 3.3"},
      {"cap_lambda", "0.001", "entropy weight lambda of the capped assignment", "paper"},
      {"cap_iterations", "100", "Dykstra iterations of the capped assignment", "paper"},
      {"decoder_aux_coef", "0.01", "aux loss coefficient of the decoder's top-2 router",
       "code: flaxformer experts_choose configs"},
  };
}

ExpertChoiceOptions ExpertChoiceOptionsFromKnobs(const Knobs& knobs) {
  ExpertChoiceOptions o;
  o.capacity_factor = knobs.GetDouble("capacity_factor");
  o.cap = knobs.GetInt("cap");
  o.cap_lambda = knobs.GetDouble("cap_lambda");
  o.cap_iterations = knobs.GetInt("cap_iterations");
  if (o.capacity_factor <= 0) throw std::invalid_argument("knob capacity_factor: must be > 0");
  if (o.cap < 0) throw std::invalid_argument("knob cap: must be >= 0");
  return o;
}

int64_t ExpertChoiceK(double c, int64_t n, int64_t num_experts) {
  const int64_t k = static_cast<int64_t>(
      std::llround(c * static_cast<double>(n) / static_cast<double>(num_experts)));
  return std::clamp<int64_t>(k, 1, std::max<int64_t>(n, 1));
}

at::Tensor CappedAssignment(const at::Tensor& scores_t, int64_t k, int64_t b, double lambda,
                            int64_t iterations) {
  // log A0 = (S^T - rowmax) / lambda; three constraint sets (rows = k, columns <= b, A <= 1),
  // each KL projection with its Dykstra correction term.
  at::Tensor log_a = (scores_t - std::get<0>(scores_t.max(1, true))) / lambda;
  std::vector<at::Tensor> corr(3, at::zeros_like(log_a));
  const double log_k = std::log(static_cast<double>(k));
  const double log_b = std::log(static_cast<double>(b));
  for (int64_t it = 0; it < iterations; ++it) {
    for (int set = 0; set < 3; ++set) {
      const at::Tensor y = log_a + corr[set];
      at::Tensor proj;
      if (set == 0) {
        proj = y + (log_k - at::logsumexp(y, 1, true));
      } else if (set == 1) {
        proj = y + (log_b - at::logsumexp(y, 0, true)).clamp_max(0.0);
      } else {
        proj = y.clamp_max(0.0);
      }
      corr[set] = y - proj;
      log_a = proj;
    }
  }
  return log_a.exp();
}

Routing RouteExpertChoice(const at::Tensor& logits, const at::Tensor& pad, int64_t k_in,
                          const ExpertChoiceOptions& opt, int64_t n_real) {
  const int64_t n = logits.size(0);
  const int64_t e = logits.size(1);
  // An expert cannot pick more tokens than the group has (a group of fewer tokens than the
  // capacity: a short sentence alone in evaluation).
  const int64_t k = std::min(k_in, n);
  const at::Tensor probs = at::softmax(logits, -1);  // over experts
  const at::Tensor active = ActiveMask(pad, n, logits.device());
  // Pads score -1, below any probability, so real tokens are always picked first.
  const at::Tensor scores_t =
      probs.detach().masked_fill(active.logical_not().unsqueeze(1), -1.0).t();
  at::Tensor chosen;  // [E, k] token indices
  if (opt.cap > 0) {
    at::Tensor a =
        CappedAssignment(scores_t.clamp_min(0.0), k, opt.cap, opt.cap_lambda, opt.cap_iterations);
    a = a.masked_fill(active.logical_not().unsqueeze(0), -1.0);
    chosen = std::get<1>(a.topk(k, 1));
  } else {
    chosen = std::get<1>(scores_t.topk(k, 1));
  }
  // Real tokens score >= 0 and pads -1, so each expert's picks (topk: descending) are its
  // min(k, real tokens) real picks first, then pads: the first kr columns are the real picks,
  // in the order a `nonzero` over them would give, with no host read when n_real is known.
  if (n_real < 0) n_real = RealTokens(pad, n, RouteContext{});
  const int64_t kr = std::min(k, n_real);
  const at::TensorOptions long_opt = logits.options().dtype(at::kLong);
  Routing r;
  r.token = chosen.narrow(1, 0, kr).reshape({-1});
  r.expert = at::arange(e, long_opt).unsqueeze(1).expand({e, kr}).reshape({-1});
  r.slot = at::arange(kr, long_opt).unsqueeze(0).expand({e, kr}).reshape({-1});
  r.weight = probs.index({r.token, r.expert});  // the token's probability, not renormalised
  r.capacity = k;
  r.probs = probs;
  r.choices = r.token.size(0);
  r.dropped = 0;
  r.dropped_token = at::zeros({0}, long_opt);
  r.dropped_choice = at::zeros({0}, long_opt);
  r.dropped_expert = at::zeros({0}, long_opt);
  return r;
}

ExpertChoiceRouter::ExpertChoiceRouter(int64_t d_model, int64_t num_experts,
                                       ExpertChoiceOptions opt)
    : num_experts_(num_experts), opt_(opt) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

Routing ExpertChoiceRouter::Route(const at::Tensor& x, const at::Tensor& pad,
                                  const RouteContext& ctx) {
  const at::Tensor logits = x.to(at::kFloat).matmul(weight_);
  const int64_t n = RealTokens(pad, x.size(0), ctx);
  return RouteExpertChoice(logits, pad, ExpertChoiceK(opt_.capacity_factor, n, num_experts_), opt_,
                           n);
}

}  // namespace moebench
