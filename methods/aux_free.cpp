#include "methods/aux_free.h"

#include <cmath>
#include <stdexcept>

#include "methods/routing_util.h"

namespace moebench {

// Note [Bias update]: after each optimizer step the trainer hands every aux_free router the
// step's demand per expert -- the non-pad choices of the selection (with the bias, before any
// capacity cut), counted in grad-enabled training forwards only, summed over the virtual workers
// of this process (each group's Route adds to the same counts) and over ranks (one all-reduce
// for all layers: Note [Router step hooks] in harness/train/training.cpp) -- and the router
// moves its bias: with mean load c = sum_i c_i / E and e_i = c - c_i,
//   sign (default, LFB Algorithm 1, DeepSeek-V3 section 2.1.2, Megatron):  b_i += u * sign(e_i)
//   proportional (LFB Table 3; its softmax runs, App. C):                 b_i += u * e_i
// bias_center = true subtracts the update's mean first (torchtitan), which keeps sum b = 0 and
// changes no selection (top-k and the group scores are invariant to a common shift). The
// default is the paper's uncentred update. Every forward of a step sees the same b; the update
// is frozen for the last bias_freeze_frac of max_steps (DeepSeek-V3: about 0.034).

std::vector<KnobSpec> AuxFreeKnobSpecs() {
  std::vector<KnobSpec> specs = TopkKnobSpecs();
  for (KnobSpec& s : specs) {
    if (s.name == "score_func") {
      s.default_value = "sigmoid";
      s.source = "paper: LFB section 4.1, DeepSeek-V3";
    } else if (s.name == "dropless") {
      s.default_value = "true";
      s.source = "paper: DeepSeek-V3 (no token dropping), LFB";
    } else if (s.name == "aux_coef") {
      s.default_value = "0.0";
      s.help = "batch load-balancing loss coefficient; 0 = none";
      s.source = "paper: LFB (no aux loss)";
    } else if (s.name == "k") {
      s.source = "harness (GShard's 2); LFB, DeepSeek-V3 use more";
    }
  }
  specs.push_back({"bias_update_rate", "1e-3", "u (gamma): bias step per optimizer step",
                   "paper: LFB Fig. 4, DeepSeek-V3 section 4.2"});
  specs.push_back({"bias_update_rule", "auto",
                   "sign | proportional | auto (sign for sigmoid, proportional for softmax)",
                   "paper: LFB Algorithm 1 (sign), App. C (softmax: proportional)"});
  specs.push_back({"bias_center", "false", "subtract the update's mean (sum of b stays 0)",
                   "paper: LFB (false); code: torchtitan (true)"});
  specs.push_back({"bias_freeze_frac", "0.0", "no bias update in the last fraction of max_steps",
                   "paper: LFB (0); DeepSeek-V3 about 0.034"});
  specs.push_back({"seq_aux_coef", "0.0", "sequence-wise balance loss alpha; 0 = off",
                   "paper: LFB (0); DeepSeek-V3 1e-4"});
  return specs;
}

AuxFreeOptions AuxFreeOptionsFromKnobs(const Knobs& knobs) {
  AuxFreeOptions o;
  o.topk = TopkOptionsFromKnobs(knobs);
  o.rate = knobs.GetDouble("bias_update_rate");
  const std::string& rule = knobs.GetString("bias_update_rule");
  if (rule == "sign") {
    o.rule = BiasRule::kSign;
  } else if (rule == "proportional") {
    o.rule = BiasRule::kProportional;
  } else if (rule == "auto") {
    o.rule = o.topk.score_func == ScoreFunc::kSigmoid ? BiasRule::kSign : BiasRule::kProportional;
  } else {
    throw std::invalid_argument(
        "knob bias_update_rule: expected sign | proportional | auto, got '" + rule + "'");
  }
  o.center = knobs.GetBool("bias_center");
  o.freeze_frac = knobs.GetDouble("bias_freeze_frac");
  o.seq_aux_coef = knobs.GetDouble("seq_aux_coef");
  if (!(o.rate >= 0)) throw std::invalid_argument("knob bias_update_rate: must be >= 0");
  if (!(o.freeze_frac >= 0 && o.freeze_frac <= 1)) {
    throw std::invalid_argument("knob bias_freeze_frac: must be in [0, 1]");
  }
  if (!(o.seq_aux_coef >= 0)) throw std::invalid_argument("knob seq_aux_coef: must be >= 0");
  return o;
}

at::Tensor BiasUpdate(const at::Tensor& counts, double rate, BiasRule rule, bool center) {
  const at::Tensor c = counts.to(at::kDouble);
  const at::Tensor err = c.mean() - c;
  at::Tensor delta = rule == BiasRule::kSign ? rate * at::sign(err) : rate * err;
  if (center) delta = delta - delta.mean();
  return delta.to(at::kFloat);
}

at::Tensor SequenceBalanceLoss(const at::Tensor& probs, const at::Tensor& pad, int64_t k,
                               int64_t per_sequence) {
  const int64_t t = probs.size(0), e = probs.size(1);
  const int64_t len = per_sequence > 0 && t % per_sequence == 0 ? per_sequence : t;
  const int64_t b = t / len;
  const at::Tensor mask = PadMask(pad, t, probs.device());  // [T, 1]
  const at::Tensor top = std::get<1>(probs.detach().topk(k, -1));
  const at::Tensor chosen = at::zeros_like(probs).scatter(1, top, 1.0) * mask;
  const at::Tensor n = mask.view({b, len}).sum(1);  // [B] real tokens per sequence
  const at::Tensor f = chosen.view({b, len, e}).sum(1) * (static_cast<double>(e) / k) /
                       n.clamp_min(1.0).unsqueeze(1);
  const at::Tensor p = (probs * mask).view({b, len, e}).sum(1) / n.clamp_min(1.0).unsqueeze(1);
  const at::Tensor per_seq = (f * p).sum(1);  // [B]
  const at::Tensor valid = (n > 0).to(at::kFloat);
  return (per_seq * valid).sum() / valid.sum().clamp_min(1.0);
}

AuxFreeRouter::AuxFreeRouter(int64_t d_model, int64_t num_experts, AuxFreeOptions opt)
    : TopkRouter(d_model, num_experts, opt.topk), af_(std::move(opt)) {
  bias_ = register_buffer("bias", at::zeros({num_experts}, at::kFloat));
}

Routing AuxFreeRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const at::Tensor logits = x.to(at::kFloat).matmul(weight_);
  const int64_t k = KFor(ctx);
  const Capacity capacity = ResolveCapacity(x.size(0), pad, ctx);
  // Only training forwards that will be backpropagated count (not evaluation, not no-grad).
  const bool count = ctx.training && at::GradMode::is_enabled();
  at::Tensor demand;
  Routing r = RouteTopk(logits, pad, capacity, k, opt_, ctx, bias_, count ? &demand : nullptr);
  if (count) {
    // Summed in place into one tensor kept across steps: a captured training step adds into it
    // at every replay (Note [Training step graphs] in harness/train/step_graphs.cpp).
    if (!counts_.defined()) counts_ = at::zeros_like(demand);
    counts_.add_(demand);
  }
  if (af_.seq_aux_coef > 0) {
    r.losses.push_back({"seq_aux", SequenceBalanceLoss(r.probs, pad, k, ctx.tokens_per_sentence),
                        af_.seq_aux_coef});
  }
  return r;
}

at::Tensor AuxFreeRouter::StepCounts() {
  if (counts_.defined()) return counts_.to(at::kDouble);  // a copy: AfterStep zeroes counts_
  return at::zeros({num_experts_}, bias_.options().dtype(at::kDouble));
}

void AuxFreeRouter::AfterStep(const at::Tensor& global_counts, int64_t step, int64_t total_steps) {
  if (counts_.defined()) counts_.zero_();
  const bool frozen =
      af_.freeze_frac > 0 && total_steps > 0 &&
      static_cast<double>(step) > (1.0 - af_.freeze_frac) * static_cast<double>(total_steps);
  if (frozen) return;
  at::NoGradGuard no_grad;
  bias_.add_(BiasUpdate(global_counts, af_.rate, af_.rule, af_.center).to(bias_.device()));
}

namespace {

class AuxFreeMethod : public Method {
 public:
  explicit AuxFreeMethod(const Knobs& knobs)
      : Method(knobs), opt_(AuxFreeOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    AuxFreeOptions o = opt_;
    if (layer.top_k > 0) o.topk.k = layer.top_k;  // a fine-grained layout's m*k - K_s
    return std::make_shared<AuxFreeRouter>(layer.d_model, layer.num_experts, o);
  }
  int64_t ActiveExperts() const override { return opt_.topk.k; }
  bool TokenChoice() const override { return true; }
  bool RoutesAnyK() const override { return true; }
  std::vector<std::string> KnobsBoundedByExperts() const override { return {"k"}; }
  // A fresh router's routing: bias 0 (the bias is training state, not a knob).
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    Routing r = RouteTopkLogits(opt_.topk, logits, pad, req);
    if (opt_.seq_aux_coef > 0) {
      const int64_t k = req.k > 0 ? req.k : opt_.topk.k;
      r.losses.push_back({"seq_aux", SequenceBalanceLoss(r.probs, pad, k, 0), opt_.seq_aux_coef});
    }
    return r;
  }

 private:
  AuxFreeOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeAuxFreeMethod(const Knobs& knobs) {
  return std::make_unique<AuxFreeMethod>(knobs);
}

}  // namespace moebench
