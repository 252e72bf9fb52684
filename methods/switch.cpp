#include "methods/switch.h"

#include <cmath>
#include <stdexcept>

#include "methods/capacity.h"
#include "methods/routing_util.h"

namespace moebench {

namespace {
constexpr uint64_t kPurposeJitter = 1;
constexpr uint64_t kPurposePriority = 2;
}  // namespace

std::vector<KnobSpec> SwitchKnobSpecs() {
  return {
      {"capacity_factor", "1.25", "expert capacity factor in training", "paper Table 1"},
      {"eval_capacity_factor", "2.0", "capacity factor at inference", "code: flaxformer"},
      {"min_capacity", "4", "lower bound on slots per expert", "code: DeepSpeed MoE API"},
      {"aux_coef", "0.01", "load-balancing loss coefficient alpha", "paper"},
      {"z_coef", "0.0", "router z-loss coefficient (ST-MoE); 0 = off", "code: flaxformer"},
      {"jitter", "0.01", "multiplicative router-input jitter eps (training)", "code: DeepSpeed"},
      {"priority", "order", "who keeps a slot when an expert overflows: order | random",
       "code: mesh-TF (order), DeepSpeed (random)"},
  };
}

SwitchOptions SwitchOptionsFromKnobs(const Knobs& knobs) {
  SwitchOptions o;
  o.capacity_factor = knobs.GetDouble("capacity_factor");
  o.eval_capacity_factor = knobs.GetDouble("eval_capacity_factor");
  o.min_capacity = knobs.GetInt("min_capacity");
  o.aux_coef = knobs.GetDouble("aux_coef");
  o.z_coef = knobs.GetDouble("z_coef");
  o.jitter = knobs.GetDouble("jitter");
  const std::string& priority = knobs.GetString("priority");
  if (priority == "order") {
    o.priority = SwitchPriority::kOrder;
  } else if (priority == "random") {
    o.priority = SwitchPriority::kRandom;
  } else {
    throw std::invalid_argument("knob switch.priority: expected order or random, got '" + priority +
                                "'");
  }
  if (o.capacity_factor <= 0 || o.eval_capacity_factor <= 0) {
    throw std::invalid_argument("knob switch.capacity_factor: must be > 0");
  }
  return o;
}

at::Tensor InitRouterWeight(int64_t d_model, int64_t num_experts) {
  const double std = std::sqrt(0.1 / static_cast<double>(d_model));
  return at::randn({d_model, num_experts}, at::kFloat).mul_(std).clamp_(-2 * std, 2 * std);
}

Routing RouteTop1(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  const SwitchOptions& opt, const RouteContext& ctx) {
  const int64_t t = logits.size(0);
  const int64_t e = logits.size(1);
  const at::Tensor probs = at::softmax(logits, -1);
  const at::Tensor top1 = probs.argmax(-1);
  const at::Tensor gate = probs.gather(1, top1.unsqueeze(1)).squeeze(1);
  const at::Tensor mask = PadMask(pad, t, logits.device());
  const at::Tensor active = ActiveMask(pad, t, logits.device());

  at::Tensor pos;
  if (opt.priority == SwitchPriority::kRandom && ctx.training) {
    const at::Tensor perm = RoutingPermutation(ctx, ctx.group, kPurposePriority, t, logits);
    at::Tensor pos_perm =
        SlotsInOrder(top1.index_select(0, perm), active.index_select(0, perm), e, at::Tensor());
    pos = at::empty_like(pos_perm).index_copy_(0, perm, pos_perm);
  } else {
    pos = SlotsInOrder(top1, active, e, at::Tensor());
  }
  const at::Tensor keep = active & capacity.Below(pos);
  const KeptAndDropped split = SplitKeptAndDropped(keep, active, ctx.defer_counts);
  const at::Tensor& token = split.kept;

  Routing r;
  r.token = token;
  r.expert = top1.index_select(0, token);
  r.slot = pos.index_select(0, token);
  r.weight = gate.index_select(0, token);
  r.capacity = capacity.slots;
  r.probs = probs;
  if (ctx.defer_counts) {
    r.deferred = split.counts;
  } else {
    r.dropped_token = split.dropped;
    r.dropped_choice = at::zeros({r.dropped_token.size(0)}, r.dropped_token.options());
    r.dropped_expert = top1.index_select(0, r.dropped_token);
    r.choices = token.size(0) + split.dropped.size(0);
    r.dropped = split.dropped.size(0);
  }
  r.losses.push_back({"aux", LoadBalanceLoss(probs, top1, mask), opt.aux_coef});
  if (opt.z_coef > 0) r.losses.push_back({"z", RouterZLoss(logits, mask), opt.z_coef});
  return r;
}

SwitchRouter::SwitchRouter(int64_t d_model, int64_t num_experts, SwitchOptions opt)
    : num_experts_(num_experts), opt_(opt) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

at::Tensor SwitchRouter::Logits(const at::Tensor& x, const RouteContext& ctx) {
  at::Tensor xf = x.to(at::kFloat);
  if (ctx.training && opt_.jitter > 0) {
    // One draw per input element: on the input's device (a CPU draw and copy took 8 ms per
    // 2048 x 512 group on an H100 machine, longer than the rest of the layer).
    const at::Tensor noise = RoutingUniform(ctx, ctx.group, kPurposeJitter, xf, 1.0 - opt_.jitter,
                                            1.0 + opt_.jitter, DrawOn::kDevice);
    xf = xf * noise;
  }
  return xf.matmul(weight_);
}

int64_t SwitchRouter::CapacityFor(int64_t /*tokens*/, int64_t real_tokens,
                                  const RouteContext& ctx) const {
  if (!ctx.training && ctx.eval_k > 1) return 0;  // any-k evaluation: no capacity
  // Incremental decoding routes one token per sentence: a capacity that cannot drop.
  if (!ctx.training && ctx.incremental) return NoDropCapacity(real_tokens);
  const double cf = ctx.training ? opt_.capacity_factor : opt_.eval_capacity_factor;
  return Top1Capacity(cf, real_tokens, num_experts_, opt_.min_capacity);
}

Routing SwitchRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const at::Tensor logits = Logits(x, ctx);
  if (!ctx.training && ctx.eval_k > 1) {
    // Any-k evaluation: the k most probable experts, each weighted by its probability (the
    // top-1 rule extended), with a capacity that cannot drop.
    return RouteAnyK(logits, pad, ctx.eval_k, /*renormalize=*/false, ctx);
  }
  return RouteTop1(logits, pad, ResolveCapacity(x.size(0), pad, ctx), opt_, ctx);
}

namespace {

class SwitchMethod : public RouterOptionsMethod<SwitchOptions, SwitchRouter> {
 public:
  explicit SwitchMethod(const Knobs& knobs)
      : RouterOptionsMethod(knobs, SwitchOptionsFromKnobs(knobs)) {}
  bool TokenChoice() const override { return true; }
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    return RouteTop1(logits, pad, RequestCapacity(req, logits.size(1), Top1Capacity), opt_,
                     req.ctx);
  }
};

}  // namespace

std::unique_ptr<Method> MakeSwitchMethod(const Knobs& knobs) {
  return std::make_unique<SwitchMethod>(knobs);
}

}  // namespace moebench
