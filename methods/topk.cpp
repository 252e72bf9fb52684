#include "methods/topk.h"

#include "harness/torch_compat.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "methods/capacity.h"
#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench {

// Note [Top-k token choice]: `topk` follows DeepSpeed's topkgating (deepspeed/moe/sharded_moe.py)
// for capacity and drops, and the DeepSeek-V3 / torchtitan / Megatron pipeline for scores:
//   s = softmax(h) | sigmoid(h);  S = topk(s + b, k) (b: aux_free's bias, group-limited with
//   node_limit_topk);  w = s[S] (normalised per route_norm) * route_scale.
// Capacity (DeepSpeed _capacity with capacity_factor * k): C = max(min_capacity,
// ceil(k * cf * n / E)), n the group's real tokens. Where it differs from GShard's top-2
// (methods/gshard.cpp):
//  - all k choices of a token compete for an expert's slots alike. GShard gives every first
//    choice a slot before any second choice; here a token's rank among its own choices does not
//    matter, only the expert's view of its tokens.
//  - drop_policy = probs (DeepSpeed's default): an overflowing expert keeps the C tokens with the
//    highest scores among those that chose it, whatever their position; `position` keeps the
//    earliest (token order, as GShard within one choice). DeepSpeed ranks by the raw logit
//    (topk_masked_gates holds logits), we by the score s; the same order for sigmoid, and for
//    softmax whenever the tokens' log-partition functions are equal. Its non-chosen entries are
//    0 in that ranking, so with negative logits they can take slots that are then masked out;
//    we rank only the tokens that chose the expert.
//  - no second-expert policy: all k choices are deterministic (GShard drops its second expert
//    with probability 1 - 2 * g2).
//  - gates: softmax over all E experts, renormalised over the choices that kept a slot
//    (route_norm = kept, what auto means for softmax with k > 1): a token with one surviving
//    choice gets weight 1, as fairseq's normalize = after, not GShard's paper mode.
//  - aux loss: E / k * sum_e me_e * ce_e, with ce_e the fraction of tokens that chose e among
//    their k (before drops) and me_e the mean normalised score: 1 under uniform routing.
// Slots are numbered in token order within each expert over its kept tokens, as DeepSpeed's
// locations (cumsum of the kept mask).

// Note [Top-k gate normalisation]: route_norm = selected divides by the sum over the k chosen
// (DeepSeek-V3 Eq. 13, Megatron's sigmoid path, torchtitan's route_norm) before any capacity
// cut; kept divides by the sum over the surviving choices (DeepSpeed). They agree when nothing
// is dropped. auto: none at k = 1 (Megatron: a lone weight of 1 would cut the router's gradient
// through the combine), kept for softmax, selected for sigmoid (DeepSeek-V3's Gate).

std::vector<KnobSpec> TopkKnobSpecs() {
  return {
      {"k", "2", "experts per token", "harness (GShard's 2); code: DeepSpeed TopKGate k"},
      {"capacity_factor", "1.0", "slots per expert max(min_capacity, ceil(k*cf*n/E))",
       "code: DeepSpeed topkgating"},
      {"eval_capacity_factor", "0", "capacity factor at inference; 0 = never drop",
       "harness (as gshard)"},
      {"min_capacity", "4", "lower bound on slots per expert", "code: DeepSpeed MoE API"},
      {"dropless", "false", "no capacity: every token keeps its k experts (variable rows)",
       "code: DeepSpeed drop_tokens; true = Megatron, torchtitan, MegaBlocks"},
      {"drop_policy", "probs", "who keeps a slot: probs (highest score) | position (earliest)",
       "code: DeepSpeed topkgating"},
      {"score_func", "softmax", "softmax | sigmoid", "code: Megatron (softmax), DeepSeek-V3"},
      {"route_norm", "auto", "auto | none | selected | kept (Note [Top-k gate normalisation])",
       "code: DeepSpeed (kept), DeepSeek-V3 (selected)"},
      {"route_scale", "1.0", "multiplies the combine weights", "code: torchtitan; V3 2.5"},
      {"aux_coef", "0.01", "load-balancing loss coefficient (E/k sum f P)",
       "paper: Switch; code: DeepSpeed"},
      {"z_coef", "0.0", "router z-loss coefficient; 0 = off", "code: flaxformer"},
      {"node_limit_topk", "0", "M: groups (nodes) a token may reach; 0 = no limit",
       "paper: DeepSeek-V3 (4 of 8)"},
      {"node_limit_groups", "0", "G: expert groups; 0 = nodes (workers / workers_per_node)",
       "paper: DeepSeek-V3 (nodes)"},
      {"node_score", "sum_topk", "group score: sum_topk (top k/M) | top2 | max",
       "paper: DeepSeek-V3 (sum_topk), V2 (max)"},
  };
}

namespace {

template <typename E>
E ParseChoice(const std::string& knob, const std::string& value,
              const std::vector<std::pair<std::string, E>>& choices) {
  std::string names;
  for (const auto& [name, e] : choices) {
    if (value == name) return e;
    names += (names.empty() ? "" : " | ") + name;
  }
  throw std::invalid_argument("knob " + knob + ": expected " + names + ", got '" + value + "'");
}

}  // namespace

TopkOptions TopkOptionsFromKnobs(const Knobs& knobs) {
  TopkOptions o;
  o.k = knobs.GetInt("k");
  o.capacity_factor = knobs.GetDouble("capacity_factor");
  o.eval_capacity_factor = knobs.GetDouble("eval_capacity_factor");
  o.min_capacity = knobs.GetInt("min_capacity");
  o.dropless = knobs.GetBool("dropless");
  o.drop_policy =
      ParseChoice<DropPolicy>("drop_policy", knobs.GetString("drop_policy"),
                              {{"probs", DropPolicy::kProbs}, {"position", DropPolicy::kPosition}});
  o.score_func =
      ParseChoice<ScoreFunc>("score_func", knobs.GetString("score_func"),
                             {{"softmax", ScoreFunc::kSoftmax}, {"sigmoid", ScoreFunc::kSigmoid}});
  o.route_norm = ParseChoice<RouteNorm>("route_norm", knobs.GetString("route_norm"),
                                        {{"auto", RouteNorm::kAuto},
                                         {"none", RouteNorm::kNone},
                                         {"selected", RouteNorm::kSelected},
                                         {"kept", RouteNorm::kKept}});
  o.route_scale = knobs.GetDouble("route_scale");
  o.aux_coef = knobs.GetDouble("aux_coef");
  o.z_coef = knobs.GetDouble("z_coef");
  o.node_limit_topk = knobs.GetInt("node_limit_topk");
  o.node_limit_groups = knobs.GetInt("node_limit_groups");
  o.node_score = ParseChoice<NodeScore>(
      "node_score", knobs.GetString("node_score"),
      {{"sum_topk", NodeScore::kSumTopk}, {"top2", NodeScore::kTop2}, {"max", NodeScore::kMax}});
  if (o.k < 1) throw std::invalid_argument("knob k: must be >= 1");
  if (o.capacity_factor <= 0) throw std::invalid_argument("knob capacity_factor: must be > 0");
  if (o.min_capacity < 0) throw std::invalid_argument("knob min_capacity: must be >= 0");
  if (!(o.route_scale > 0)) throw std::invalid_argument("knob route_scale: must be > 0");
  if (o.node_limit_topk < 0 || o.node_limit_groups < 0) {
    throw std::invalid_argument("knobs node_limit_topk, node_limit_groups: must be >= 0");
  }
  return o;
}

RouteNorm EffectiveRouteNorm(const TopkOptions& opt, int64_t k) {
  if (opt.route_norm != RouteNorm::kAuto) return opt.route_norm;
  if (k == 1) return RouteNorm::kNone;
  return opt.score_func == ScoreFunc::kSoftmax ? RouteNorm::kKept : RouteNorm::kSelected;
}

int64_t TopkGroupCapacity(const TopkOptions& opt, int64_t k, int64_t n_real, int64_t num_experts,
                          bool training, bool incremental) {
  if (opt.dropless || (!training && incremental)) return 0;
  const double cf = training ? opt.capacity_factor : opt.eval_capacity_factor;
  if (cf <= 0) return 0;
  return TopkCapacity(cf, k, n_real, num_experts, opt.min_capacity);
}

at::Tensor TopkScores(const at::Tensor& logits, ScoreFunc score_func) {
  const at::Tensor h = logits.to(at::kFloat);
  return score_func == ScoreFunc::kSigmoid ? at::sigmoid(h) : at::softmax(h, -1);
}

namespace {

// The selection scores with every expert outside a token's best `m` groups set to -inf
// (METHODS-MODERN.md section 8). Errors name the knobs.
at::Tensor LimitToGroups(const at::Tensor& sel, int64_t groups, int64_t m, int64_t k,
                         NodeScore score) {
  const int64_t t = sel.size(0), e = sel.size(1);
  const std::string where = " (node_limit_groups G = " + std::to_string(groups) +
                            ", node_limit_topk M = " + std::to_string(m) +
                            ", k = " + std::to_string(k) + ", " + std::to_string(e) + " experts)";
  if (e % groups != 0) throw std::invalid_argument("node limit: G must divide the experts" + where);
  const int64_t per = e / groups;
  if (m * per < k) throw std::invalid_argument("node limit: M * E / G must be >= k" + where);
  const at::Tensor v = sel.view({t, groups, per});
  at::Tensor gs;
  if (score == NodeScore::kMax) {
    gs = v.amax(-1);
  } else {
    int64_t r = 2;
    if (score == NodeScore::kSumTopk) {
      if (k % m != 0) {
        throw std::invalid_argument("node limit: node_score sum_topk needs M to divide k" + where);
      }
      r = k / m;
    }
    if (r > per) {
      throw std::invalid_argument("node limit: node_score sums the top " + std::to_string(r) +
                                  " of a group of " + std::to_string(per) + " experts" + where);
    }
    gs = std::get<0>(v.topk(r, -1)).sum(-1);
  }
  const at::Tensor keep = std::get<1>(gs.topk(m, -1));  // [T, M]
  const at::Tensor gmask =
      at::zeros({t, groups}, sel.options().dtype(at::kBool)).scatter(1, keep, true);
  return sel.masked_fill(gmask.logical_not().unsqueeze(-1).expand({t, groups, per}).reshape({t, e}),
                         -INFINITY);
}

}  // namespace

at::Tensor SelectExperts(const at::Tensor& scores, const at::Tensor& bias, int64_t k,
                         const TopkOptions& opt, const Topology& topo) {
  at::NoGradGuard no_grad;
  at::Tensor sel = scores.detach();
  if (bias.defined()) sel = sel + bias.to(sel.device()).unsqueeze(0);
  if (opt.node_limit_topk > 0) {
    const int64_t groups =
        opt.node_limit_groups > 0 ? opt.node_limit_groups : static_cast<int64_t>(topo.num_nodes());
    // M >= G keeps every group: the unrestricted top-k, bit for bit.
    if (opt.node_limit_topk < groups) {
      sel = LimitToGroups(sel, groups, opt.node_limit_topk, k, opt.node_score);
    }
  }
  return std::get<1>(sel.topk(k, -1));
}

namespace {

// [T, E] bool: which (token, expert) choices keep a slot, given the choices `chosen`.
at::Tensor KeepWithinCapacity(const at::Tensor& chosen, const at::Tensor& scores,
                              const Capacity& capacity, DropPolicy policy) {
  if (capacity.slots <= 0) return chosen;
  if (policy == DropPolicy::kPosition) {
    const at::Tensor loc = chosen.to(at::kLong).cumsum(0) - 1;
    return chosen & capacity.Below(loc);
  }
  // probs: the `capacity` best scores among the tokens that chose the expert (scores are >= 0,
  // so -1 ranks every other token last; they are masked out again below). Bounded (Note
  // [Bounded capacity]): the best `slots` by a stable sort (ties: the earlier token), of which
  // the ranks below the real capacity count; the exact path's topk picks among ties as it may.
  const int64_t c = std::min<int64_t>(capacity.slots, chosen.size(0));
  const at::Tensor pri = scores.detach().masked_fill(chosen.logical_not(), -1.0);
  if (!capacity.limit.defined()) {
    const at::Tensor top = std::get<1>(pri.topk(c, 0));  // [C, E]
    return chosen & at::zeros_like(chosen).scatter(0, top, true);
  }
  const at::Tensor top = compat::StableArgsortDescending(pri, 0).narrow(0, 0, c);
  const at::Tensor ranked =
      capacity.Below(at::arange(c, top.options()).unsqueeze(1)).expand_as(top).contiguous();
  return chosen & at::zeros_like(chosen).scatter(0, top, ranked);
}

// DeepSpeed topkgating's aux loss: E / k * sum_e me_e * ce_e over real tokens, me the mean
// score normalised over the experts, ce the fraction of tokens choosing e (before drops).
at::Tensor TopkAuxLoss(const at::Tensor& probs, const at::Tensor& chosen, const at::Tensor& mask,
                       int64_t k) {
  const int64_t e = probs.size(1);
  const at::Tensor n = mask.sum().clamp_min(1.0);
  const at::Tensor me = (probs * mask).sum(0) / n;
  const at::Tensor ce = (chosen.to(at::kFloat) * mask).sum(0) / n;
  return static_cast<double>(e) / static_cast<double>(k) * (me * ce).sum();
}

}  // namespace

Routing RouteTopk(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  int64_t k, const TopkOptions& opt, const RouteContext& ctx,
                  const at::Tensor& bias, at::Tensor* demand) {
  const int64_t t = logits.size(0);
  const int64_t e = logits.size(1);
  if (k <= 0) k = opt.k;
  if (k > e) {
    throw std::invalid_argument("knob k = " + std::to_string(k) + " exceeds the " +
                                std::to_string(e) + " experts");
  }
  const at::Tensor scores = TopkScores(logits, opt.score_func);
  const at::Tensor active = ActiveMask(pad, t, logits.device());
  const at::Tensor idx = SelectExperts(scores, bias, k, opt, ctx.topology);  // [T, k]
  at::Tensor w = scores.gather(1, idx);
  const RouteNorm norm = EffectiveRouteNorm(opt, k);
  if (norm == RouteNorm::kSelected) w = w / (w.sum(-1, true) + 1e-20);

  const at::Tensor chosen =
      at::zeros({t, e}, active.options()).scatter(1, idx, true) & active.unsqueeze(1);
  if (demand) *demand = chosen.to(at::kLong).sum(0);
  const at::Tensor kept_te = KeepWithinCapacity(chosen, scores, capacity, opt.drop_policy);
  const at::Tensor slot_te = kept_te.to(at::kLong).cumsum(0) - 1;
  const at::Tensor keep = kept_te.gather(1, idx);  // [T, k]
  const at::Tensor slot = slot_te.gather(1, idx);
  if (norm == RouteNorm::kKept) {
    const at::Tensor wk = w * keep.to(w.scalar_type());
    w = wk / wk.sum(-1, true).clamp_min(1.1920929e-07);  // DeepSpeed: float32 eps
  }
  if (opt.route_scale != 1.0) w = w * opt.route_scale;

  // Choice-major flat lists (index c * T + t is token t's choice c), kept first.
  const at::Tensor active_flat = active.unsqueeze(1).expand({t, k}).t().reshape({-1});
  const KeptAndDropped split =
      SplitKeptAndDropped(keep.t().reshape({-1}), active_flat, ctx.defer_counts);
  const at::Tensor expert_flat = idx.t().reshape({-1});
  Routing r;
  r.token = split.kept.remainder(t);
  r.expert = expert_flat.index_select(0, split.kept);
  r.slot = slot.t().reshape({-1}).index_select(0, split.kept);
  r.weight = w.t().reshape({-1}).index_select(0, split.kept);
  r.capacity = capacity.slots;
  if (ctx.defer_counts) {
    r.deferred = split.counts;
  } else {
    r.dropped_token = split.dropped.remainder(t);
    r.dropped_choice = at::div(split.dropped, t, "floor");
    r.dropped_expert = expert_flat.index_select(0, split.dropped);
    r.choices = split.kept.size(0) + split.dropped.size(0);
    r.dropped = split.dropped.size(0);
  }
  // Router probabilities for the metrics and the aux loss: sigmoid scores normalised over the
  // experts first (METHODS-MODERN.md section 3), softmax ones as they are.
  r.probs = opt.score_func == ScoreFunc::kSigmoid ? scores / scores.sum(-1, true) : scores;
  const at::Tensor mask = PadMask(pad, t, logits.device());
  r.losses.push_back({"aux", TopkAuxLoss(r.probs, chosen, mask, k), opt.aux_coef});
  if (opt.z_coef > 0) r.losses.push_back({"z", RouterZLoss(logits, mask), opt.z_coef});
  return r;
}

TopkRouter::TopkRouter(int64_t d_model, int64_t num_experts, TopkOptions opt)
    : num_experts_(num_experts), opt_(std::move(opt)) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

int64_t TopkRouter::KFor(const RouteContext& ctx) const {
  const int64_t k = !ctx.training && ctx.eval_k > 0 ? ctx.eval_k : opt_.k;
  return std::min<int64_t>(k, num_experts_);
}

int64_t TopkRouter::CapacityFor(int64_t /*tokens*/, int64_t real_tokens,
                                const RouteContext& ctx) const {
  return TopkGroupCapacity(opt_, KFor(ctx), real_tokens, num_experts_, ctx.training,
                           ctx.incremental);
}

Routing TopkRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const at::Tensor logits = x.to(at::kFloat).matmul(weight_);
  return RouteTopk(logits, pad, ResolveCapacity(x.size(0), pad, ctx), KFor(ctx), opt_, ctx);
}

Routing RouteTopkLogits(const TopkOptions& opt, const at::Tensor& logits, const at::Tensor& pad,
                        const LogitsRequest& req, const at::Tensor& bias) {
  const int64_t k = req.k > 0 ? req.k : opt.k;
  const int64_t capacity = req.capacity >= 0
                               ? req.capacity
                               : TopkGroupCapacity(opt, k, req.real_tokens, logits.size(1),
                                                   req.ctx.training, req.ctx.incremental);
  return RouteTopk(logits, pad, capacity, k, opt, req.ctx, bias);
}

namespace {

class TopkMethod : public Method {
 public:
  explicit TopkMethod(const Knobs& knobs) : Method(knobs), opt_(TopkOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    TopkOptions o = opt_;
    if (layer.top_k > 0) o.k = layer.top_k;  // a fine-grained layout's m*k - K_s
    return std::make_shared<TopkRouter>(layer.d_model, layer.num_experts, o);
  }
  int64_t ActiveExperts() const override { return opt_.k; }
  bool TokenChoice() const override { return true; }
  bool RoutesAnyK() const override { return true; }
  std::vector<std::string> KnobsBoundedByExperts() const override { return {"k"}; }
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    return RouteTopkLogits(opt_, logits, pad, req);
  }

 private:
  TopkOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeTopkMethod(const Knobs& knobs) {
  return std::make_unique<TopkMethod>(knobs);
}

}  // namespace moebench
