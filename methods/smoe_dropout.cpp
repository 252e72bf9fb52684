#include "methods/smoe_dropout.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "methods/routing_util.h"

namespace moebench {

std::vector<KnobSpec> SmoeDropoutKnobSpecs() {
  return {
      {"k_min", "2", "experts per token at step 0", "code: argparse default"},
      {"k_max", "0", "experts per token at the end of the schedule; 0 = E",
       "code: argparse default 16 = N"},
      {"schedule_steps", "0", "steps over which k grows linearly; 0 = the run's max_steps",
       "code: released scripts (all steps)"},
      {"eval_k", "0", "experts per token at inference; 0 = E", "paper (evaluate at k = N)"},
  };
}

SmoeDropoutOptions SmoeDropoutOptionsFromKnobs(const Knobs& knobs) {
  SmoeDropoutOptions o;
  o.k_min = knobs.GetInt("k_min");
  o.k_max = knobs.GetInt("k_max");
  o.schedule_steps = knobs.GetInt("schedule_steps");
  o.eval_k = knobs.GetInt("eval_k");
  if (o.k_min < 1) throw std::invalid_argument("knob k_min: must be >= 1");
  if (o.k_max != 0 && o.k_max < o.k_min)
    throw std::invalid_argument("knob k_max: must be >= k_min");
  return o;
}

int64_t SmoeScheduleK(int64_t step, int64_t total, int64_t k_min, int64_t k_max) {
  if (total <= 0) return k_max;
  const double frac = static_cast<double>(step) / static_cast<double>(total);
  const int64_t k = static_cast<int64_t>(std::llround((k_max - k_min) * frac)) + k_min;
  return std::clamp(k, k_min, k_max);
}

Routing RouteTopKSoftmax(const at::Tensor& logits, const at::Tensor& pad, int64_t k, bool defer) {
  const int64_t t = logits.size(0);
  k = std::min<int64_t>(k, logits.size(1));
  auto [values, experts] = logits.topk(k, -1);
  const at::Tensor weights = at::softmax(values, -1);
  const at::Tensor active =
      ActiveMask(pad, t, logits.device()).unsqueeze(1).expand({t, k}).contiguous();
  Routing r = AssignChoices(experts, weights, active, logits.size(1), 0, defer);
  r.probs = at::softmax(logits, -1);
  return r;
}

SmoeDropoutRouter::SmoeDropoutRouter(int64_t d_model, int64_t num_experts, SmoeDropoutOptions opt)
    : num_experts_(num_experts), opt_(opt) {
  // nn.Linear's default initialisation, then frozen (--freeze_gate in the reference code).
  const double a = 1.0 / std::sqrt(static_cast<double>(d_model));
  weight_ = register_parameter("weight", at::empty({d_model, num_experts}).uniform_(-a, a),
                               /*requires_grad=*/false);
  bias_ = register_parameter("bias", at::empty({num_experts}).uniform_(-a, a),
                             /*requires_grad=*/false);
}

int64_t SmoeDropoutRouter::KFor(const RouteContext& ctx) const {
  const int64_t k_max = opt_.k_max > 0 ? std::min(opt_.k_max, num_experts_) : num_experts_;
  const int64_t k_min = std::min(opt_.k_min, k_max);
  if (!ctx.training) {
    if (ctx.eval_k > 0) return std::min(ctx.eval_k, num_experts_);
    return opt_.eval_k > 0 ? std::min(opt_.eval_k, num_experts_) : num_experts_;
  }
  const int64_t total = opt_.schedule_steps > 0 ? opt_.schedule_steps : ctx.total_steps;
  return SmoeScheduleK(ctx.step, total, k_min, k_max);
}

Routing SmoeDropoutRouter::Route(const at::Tensor& x, const at::Tensor& pad,
                                 const RouteContext& ctx) {
  const at::Tensor logits = at::addmm(bias_, x.to(at::kFloat), weight_);
  return RouteTopKSoftmax(logits, pad, KFor(ctx), ctx.defer_counts);
}

namespace {

class SmoeDropoutMethod : public Method {
 public:
  explicit SmoeDropoutMethod(const Knobs& knobs)
      : Method(knobs), opt_(SmoeDropoutOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<SmoeDropoutRouter>(layer.d_model, layer.num_experts, opt_);
  }
  int64_t ExpertHidden(int64_t d_ff, int64_t num_experts) const override {
    if (d_ff % num_experts != 0) {
      throw std::invalid_argument("smoe_dropout: d_ff (" + std::to_string(d_ff) +
                                  ") must be divisible by the number of experts (" +
                                  std::to_string(num_experts) + ")");
    }
    return d_ff / num_experts;
  }
  // Parameters touched per token at the end of training (k_max experts of width d_ff / E).
  int64_t ActiveExperts() const override { return opt_.k_max > 0 ? opt_.k_max : 1 << 30; }
  std::vector<std::string> KnobsBoundedByExperts() const override {
    return {"k_min", "k_max", "eval_k"};
  }
  // The inference rule: the request's k, else eval_k, else every expert.
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    const int64_t e = logits.size(1);
    if (req.k > e) {
      throw std::invalid_argument("\"k\" = " + std::to_string(req.k) + " exceeds the " +
                                  std::to_string(e) + " experts of the logits");
    }
    return RouteTopKSoftmax(logits, pad, req.k > 0 ? req.k : (opt_.eval_k > 0 ? opt_.eval_k : e));
  }

 private:
  SmoeDropoutOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeSmoeDropoutMethod(const Knobs& knobs) {
  return std::make_unique<SmoeDropoutMethod>(knobs);
}

}  // namespace moebench
