#include "methods/gshard.h"

#include <cmath>
#include <stdexcept>

#include "methods/capacity.h"
#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench {

namespace {
constexpr uint64_t kPurposeSecond = 11;
constexpr uint64_t kPurposeGumbel = 12;
}  // namespace

std::vector<KnobSpec> GShardKnobSpecs() {
  return {
      {"capacity_factor", "1.0", "per-group capacity ceil(2*cf*S/E); cf 1 gives the paper's 2S/E",
       "paper"},
      {"eval_capacity_factor", "0", "capacity factor at inference; 0 = never drop",
       "harness (docs/METHODS.md section 2)"},
      {"min_capacity", "0", "lower bound on slots per expert", "paper (none)"},
      {"aux_coef", "0.01", "load-balancing loss coefficient k", "code: lingvo gshard_builder"},
      {"z_coef", "0.0", "router z-loss coefficient; 0 = off", "code: flaxformer"},
      {"second_policy", "random",
       "second expert: random (kept w.p. min(1, 2*g2n)) | all | sampling",
       "paper (random), code: DeepSpeed/fairseq (sampling)"},
      {"normalize", "before", "gate normalisation before (paper) or after (fairseq) dropping",
       "paper / code: lingvo legacy_mtf_behavior"},
      {"stochastic_eval", "false", "apply the second-expert policy at inference too",
       "code: lingvo, fairseq"},
  };
}

SecondPolicy ParseSecondPolicy(const std::string& value) {
  if (value == "random") return SecondPolicy::kRandom;
  if (value == "all") return SecondPolicy::kAll;
  if (value == "sampling") return SecondPolicy::kSampling;
  throw std::invalid_argument("knob second_policy: expected random, all or sampling, got '" +
                              value + "'");
}

GateNormalize ParseGateNormalize(const std::string& value) {
  if (value == "before") return GateNormalize::kBefore;
  if (value == "after") return GateNormalize::kAfter;
  throw std::invalid_argument("knob normalize: expected before or after, got '" + value + "'");
}

GShardOptions GShardOptionsFromKnobs(const Knobs& knobs) {
  GShardOptions o;
  o.capacity_factor = knobs.GetDouble("capacity_factor");
  o.eval_capacity_factor = knobs.GetDouble("eval_capacity_factor");
  o.min_capacity = knobs.GetInt("min_capacity");
  o.aux_coef = knobs.GetDouble("aux_coef");
  o.z_coef = knobs.GetDouble("z_coef");
  o.second_policy = ParseSecondPolicy(knobs.GetString("second_policy"));
  o.normalize = ParseGateNormalize(knobs.GetString("normalize"));
  o.stochastic_eval = knobs.GetBool("stochastic_eval");
  if (o.capacity_factor <= 0) throw std::invalid_argument("knob capacity_factor: must be > 0");
  return o;
}

Routing RouteTop2(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  const GShardOptions& opt, const RouteContext& ctx) {
  const int64_t t = logits.size(0);
  const int64_t e = logits.size(1);
  const at::Tensor probs = at::softmax(logits, -1);
  const at::Tensor active = ActiveMask(pad, t, logits.device());
  const bool apply_policy = ctx.training || opt.stochastic_eval;

  const at::Tensor e1 = probs.argmax(-1);
  // (By scatter: at::one_hot reads its input's minimum on the host, on the CPU.)
  const at::Tensor first =
      at::zeros({t, e}, logits.options().dtype(at::kBool)).scatter_(1, e1.unsqueeze(1), true);
  at::Tensor e2;
  if (apply_policy && opt.second_policy == SecondPolicy::kSampling) {
    // Gumbel-max sample of the second expert, excluding the first (DeepSpeed, fairseq).
    // Drawn on the CPU with logits' shape, dtype and strides, then moved to their device.
    const at::Tensor u = RoutingUniform(ctx, ctx.group, kPurposeGumbel, logits, 1e-9, 1.0);
    e2 = (logits - at::log(-at::log(u))).masked_fill(first, -INFINITY).argmax(-1);
  } else {
    // The argmax of the *logits* without the first choice (DeepSpeed, fairseq top2gating):
    // where the softmax saturates, many probabilities are exactly 0 and their argmax would be
    // the lowest index, not the next-best expert.
    e2 = logits.masked_fill(first, -INFINITY).argmax(-1);
  }
  const at::Tensor g1 = probs.gather(1, e1.unsqueeze(1)).squeeze(1);
  const at::Tensor g2 = probs.gather(1, e2.unsqueeze(1)).squeeze(1);
  const at::Tensor den = (g1 + g2).clamp_min(1e-9);
  const at::Tensor g1n = g1 / den;
  const at::Tensor g2n = g2 / den;

  at::Tensor active2 = active;
  if (apply_policy && opt.second_policy == SecondPolicy::kRandom) {
    // Keep the second expert with probability min(1, 2 * g2), before slots are given, so a
    // rejected choice uses no capacity (lingvo; see docs/METHODS.md section 2).
    const at::Tensor u =
        RoutingUniform(ctx, ctx.group, kPurposeSecond,
                       at::empty({t}, logits.options().dtype(at::kFloat)), 0.0, 1.0);
    // fairseq tests 2 * gates2_s: normalised over the two choices first only when it
    // normalises before dropping (normalize = before); with normalize = after, the raw g2.
    const at::Tensor g2_keep = opt.normalize == GateNormalize::kBefore ? g2n : g2;
    active2 = active & (u < 2.0 * g2_keep.detach());
  }
  Routing r = AssignChoices(at::stack({e1, e2}, 1), at::stack({g1n, g2n}, 1),
                            at::stack({active, active2}, 1), e, capacity, ctx.defer_counts);
  if (opt.normalize == GateNormalize::kAfter && r.token.numel() > 0) {
    // fairseq: renormalise over the surviving choices, so a lone survivor gets weight 1.
    // (Deferred lists also hold the dropped and inactive choices: they add zeros.)
    const at::Tensor raw = probs.index({r.token, r.expert});
    const at::Tensor surviving =
        r.deferred.defined() ? raw * DeferredKeptMask(r).to(raw.scalar_type()) : raw;
    const at::Tensor sum = at::zeros({t}, raw.options()).index_add(0, r.token, surviving);
    r.weight = raw / sum.index_select(0, r.token).clamp_min(1e-9);
  }
  r.capacity = capacity.slots;
  r.probs = probs;
  const at::Tensor mask = PadMask(pad, t, logits.device());
  r.losses.push_back({"aux", LoadBalanceLoss(probs, e1, mask), opt.aux_coef});
  if (opt.z_coef > 0) r.losses.push_back({"z", RouterZLoss(logits, mask), opt.z_coef});
  return r;
}

GShardRouter::GShardRouter(int64_t d_model, int64_t num_experts, GShardOptions opt)
    : num_experts_(num_experts), opt_(opt) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

int64_t GShardRouter::CapacityFor(int64_t /*tokens*/, int64_t real_tokens,
                                  const RouteContext& ctx) const {
  // Any-k evaluation routes without a capacity; incremental decoding with one that cannot drop.
  if (!ctx.training && ctx.eval_k > 0 && ctx.eval_k != 2) return 0;
  if (!ctx.training && ctx.incremental) return NoDropCapacity(real_tokens);
  const double cf = ctx.training ? opt_.capacity_factor : opt_.eval_capacity_factor;
  return Top2Capacity(cf, real_tokens, num_experts_, opt_.min_capacity);
}

Routing GShardRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const at::Tensor logits = x.to(at::kFloat).matmul(weight_);
  if (!ctx.training && ctx.eval_k > 0 && ctx.eval_k != 2) {
    // Any-k evaluation: top-k with weights renormalised over the k chosen, no drops.
    return RouteAnyK(logits, pad, ctx.eval_k, /*renormalize=*/true, ctx);
  }
  return RouteTop2(logits, pad, ResolveCapacity(x.size(0), pad, ctx), opt_, ctx);
}

namespace {

class GShardMethod : public RouterOptionsMethod<GShardOptions, GShardRouter> {
 public:
  explicit GShardMethod(const Knobs& knobs)
      : RouterOptionsMethod(knobs, GShardOptionsFromKnobs(knobs)) {}
  int64_t ActiveExperts() const override { return 2; }
  bool TokenChoice() const override { return true; }
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    return RouteTop2(logits, pad, RequestCapacity(req, logits.size(1), Top2Capacity), opt_,
                     req.ctx);
  }
};

}  // namespace

std::unique_ptr<Method> MakeGShardMethod(const Knobs& knobs) {
  return std::make_unique<GShardMethod>(knobs);
}

}  // namespace moebench
