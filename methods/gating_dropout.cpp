#include "methods/gating_dropout.h"

#include <algorithm>
#include <stdexcept>

#include "harness/host_read.h"
#include "methods/capacity.h"
#include "methods/gshard.h"
#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench {

namespace {
constexpr uint64_t kPurposeCoin = 31;
}

std::vector<KnobSpec> GatingDropoutKnobSpecs() {
  std::vector<KnobSpec> knobs = {
      {"p", "-1", "drop probability per (layer, step); -1 = 0.3, or 0.2 with gate_expert_drop",
       "second-hand (docs/METHODS.md section 6)"},
      {"gate_expert_drop", "false", "when dropped, skip the expert too (the layer adds nothing)",
       "paper"},
      {"ignore_gate_weight", "false", "when dropped, combine with weight 1 instead of the gate",
       "harness flag (open question in the paper)"},
      {"base", "switch", "the base router: switch | gshard", "paper (Switch-style top-1)"},
      {"second_policy", "random", "gshard base: second-expert policy", "paper"},
      {"normalize", "before", "gshard base: gate normalisation", "paper"},
  };
  for (KnobSpec k : SwitchKnobSpecs()) {
    if (k.name == "capacity_factor") {
      k.default_value = "1.0";
      k.source = "paper (cf 1.0 in training, 2.0 at test)";
    }
    knobs.push_back(k);
  }
  return knobs;
}

GatingDropoutOptions GatingDropoutOptionsFromKnobs(const Knobs& knobs) {
  GatingDropoutOptions o;
  o.gate_expert_drop = knobs.GetBool("gate_expert_drop");
  o.ignore_gate_weight = knobs.GetBool("ignore_gate_weight");
  const double p = knobs.GetDouble("p");
  o.p = p < 0 ? (o.gate_expert_drop ? 0.2 : 0.3) : p;
  if (o.p > 1) throw std::invalid_argument("knob p: must be in [0, 1]");
  const std::string& base = knobs.GetString("base");
  if (base == "switch") {
    o.base = GatingBase::kSwitch;
  } else if (base == "gshard") {
    o.base = GatingBase::kGShard;
  } else {
    throw std::invalid_argument("knob base: expected switch or gshard, got '" + base + "'");
  }
  return o;
}

bool GatingDropoutCoin(const RouteContext& ctx, double p) {
  if (!ctx.training || p <= 0) return false;
  if (p >= 1) return true;
  const at::Tensor u = at::empty({1}, at::kDouble)
                           .uniform_(0.0, 1.0, MakeGenerator(RoutingSeed(ctx, -1, kPurposeCoin)));
  return u.data_ptr<double>()[0] < p;  // a CPU draw: no device to wait for
}

void KeepOnLocalWorker(Routing& r, const RouteContext& ctx, int64_t num_experts) {
  // Without a capacity the slots' maximum sets it: over the kept choices only (a read here).
  // With one, the kept slots are below it (a deferred list's dropped and inactive entries may
  // not be, but they are never kept), so nothing is read.
  if (r.capacity <= 0) ResolveDeferred(r);
  const int64_t w = std::max(ctx.topology.workers, 1);
  const int64_t e_loc = num_experts / w;
  const int64_t cap = r.capacity > 0
                          ? r.capacity
                          : (r.slot.numel() > 0 ? HostRead(r.slot.max()).item<int64_t>() + 1 : 1);
  r.slot = at::div(r.expert, e_loc, "floor") * cap + r.slot;
  r.expert = ctx.group * e_loc + r.expert.remainder(e_loc);
  r.capacity = cap * w;
  r.skip_exchange = true;
}

GatingDropoutRouter::GatingDropoutRouter(std::shared_ptr<Router> base, int64_t num_experts,
                                         GatingDropoutOptions opt)
    : num_experts_(num_experts), opt_(opt) {
  base_ = register_module("base", std::move(base));
}

int64_t GatingDropoutRouter::CapacityFor(int64_t tokens, int64_t real_tokens,
                                         const RouteContext& ctx) const {
  const int64_t base = base_->CapacityFor(tokens, real_tokens, ctx);
  if (!GatingDropoutCoin(ctx, opt_.p)) return base;
  if (opt_.gate_expert_drop) return 0;  // no experts
  const int64_t w = std::max(ctx.topology.workers, 1);
  // KeepOnLocalWorker: a base without a capacity gets the routed slots' maximum + 1 (read on
  // the device: no fixed capacity, 0 here), or 1 when nothing was routed.
  if (base <= 0) return real_tokens == 0 ? w : 0;
  return base * w;
}

Routing GatingDropoutRouter::Route(const at::Tensor& x, const at::Tensor& pad,
                                   const RouteContext& ctx) {
  if (ctx.bounded_capacity) {
    throw std::invalid_argument(
        "gating_dropout: bounded capacity (Note [Bounded capacity]) is not supported: its "
        "per-step coin is a host decision");
  }
  const bool drop = GatingDropoutCoin(ctx, opt_.p);
  if (drop && opt_.gate_expert_drop) {
    Routing r;
    r.token = r.expert = r.slot = at::zeros({0}, x.options().dtype(at::kLong));
    r.weight = at::zeros({0}, x.options().dtype(at::kFloat));
    r.skip_experts = true;
    r.skip_exchange = true;
    return r;
  }
  Routing r = base_->Route(x, pad, ctx);
  if (!drop) return r;
  KeepOnLocalWorker(r, ctx, num_experts_);
  if (opt_.ignore_gate_weight) r.weight = at::ones_like(r.weight);
  return r;
}

namespace {

class GatingDropoutMethod : public Method {
 public:
  explicit GatingDropoutMethod(const Knobs& knobs)
      : Method(knobs), opt_(GatingDropoutOptionsFromKnobs(knobs)) {
    switch_ = SwitchOptionsFromKnobs(knobs);
    gshard_.capacity_factor = switch_.capacity_factor;
    gshard_.eval_capacity_factor = switch_.eval_capacity_factor;
    gshard_.min_capacity = switch_.min_capacity;
    gshard_.aux_coef = switch_.aux_coef;
    gshard_.z_coef = switch_.z_coef;
    gshard_.second_policy = ParseSecondPolicy(knobs.GetString("second_policy"));
    gshard_.normalize = ParseGateNormalize(knobs.GetString("normalize"));
  }
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    std::shared_ptr<Router> base;
    if (opt_.base == GatingBase::kGShard) {
      base = std::make_shared<GShardRouter>(layer.d_model, layer.num_experts, gshard_);
    } else {
      base = std::make_shared<SwitchRouter>(layer.d_model, layer.num_experts, switch_);
    }
    return std::make_shared<GatingDropoutRouter>(base, layer.num_experts, opt_);
  }
  int64_t ActiveExperts() const override { return opt_.base == GatingBase::kGShard ? 2 : 1; }
  bool TokenChoice() const override { return true; }
  // The switch base's top-1, then the coin: on a drop, every token to its local expert.
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    if (opt_.base == GatingBase::kGShard) {
      throw std::invalid_argument("gating_dropout with base gshard: route with method gshard");
    }
    const int64_t e = logits.size(1);
    const double cf = req.ctx.training ? switch_.capacity_factor : switch_.eval_capacity_factor;
    const int64_t capacity = req.capacity >= 0
                                 ? req.capacity
                                 : Top1Capacity(cf, req.real_tokens, e, switch_.min_capacity);
    Routing r = RouteTop1(logits, pad, capacity, switch_, req.ctx);
    if (GatingDropoutCoin(req.ctx, opt_.p)) KeepOnLocalWorker(r, req.ctx, e);
    return r;
  }

 private:
  GatingDropoutOptions opt_;
  SwitchOptions switch_;
  GShardOptions gshard_;
};

}  // namespace

std::unique_ptr<Method> MakeGatingDropoutMethod(const Knobs& knobs) {
  return std::make_unique<GatingDropoutMethod>(knobs);
}

}  // namespace moebench
