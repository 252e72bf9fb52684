#include "methods/sinkhorn.h"

#include <algorithm>
#include <stdexcept>

#include "methods/routing_util.h"
#include "methods/switch.h"

namespace moebench {

// Note [Sinkhorn]: Megatron-Core's sinkhorn(cost, tol = 1e-4), on the real tokens of one group
// (one worker's tokens, as Megatron balances the tokens of one router call):
//   C = exp(h); d0 = 1_n, d1 = 1_E; repeat
//     d0 = (1/n) / (C d1 + eps);  d1' = (1/E) / (C^T d0 + eps);  err = mean |d1' - d1|
//   until err <= tol;  P = diag(d0) C diag(d1).
// The columns of P sum to 1/E after every iteration, the rows to 1/n at the fixed point. The
// fixed point does not change when a constant is added to a row or a column of h; with
// sinkhorn_log_domain (default) each row's max is subtracted before exp, which leaves every d1
// iterate, so the stopping step and P, as they are (up to eps) and keeps exp finite for any
// logit (Megatron overflows above 88). It runs on the CPU in fp32 after one host read of the
// logits, capped at sinkhorn_max_iters iterations (router.sinkhorn_converged records misses).
// Training takes the top-k of P per token (no gradient: P is detached); the combine weight is
// sigmoid(h) for k = 1 and softmax(h) for k > 1, gathered at the chosen experts, with gradient,
// not renormalised. Inference (and any-k evaluation) never runs Sinkhorn: top-k of the same
// activation of h. Identical tokens have identical rows of P and pick the same experts, so the
// training balance is approximate (MaxVio > 0), not exact as BASE's. Not implemented: the
// `global` scope (an all-gather of every worker's logits) and a capacity cut (dropless, as
// Megatron without moe_expert_capacity_factor).

std::vector<KnobSpec> SinkhornKnobSpecs() {
  return {
      {"k", "1", "experts per token", "S-BASE top-1 (Clark et al.; unverified); Megatron any topk"},
      {"sinkhorn_tol", "1e-4", "stop when the mean change of the column scaling <= tol",
       "code: Megatron sinkhorn(tol=1e-4)"},
      {"sinkhorn_max_iters", "1000", "iteration cap (misses: router.sinkhorn_converged < 1)",
       "harness (Megatron: no cap)"},
      {"sinkhorn_eps", "1e-8", "added to row and column sums", "code: Megatron"},
      {"sinkhorn_log_domain", "true", "subtract each row's max before exp (same fixed point)",
       "harness (Megatron: plain exp)"},
      {"z_coef", "0.0", "router z-loss coefficient; an aux loss is not allowed",
       "code: Megatron (z-loss allowed, aux loss asserted 0)"},
  };
}

SinkhornOptions SinkhornOptionsFromKnobs(const Knobs& knobs) {
  SinkhornOptions o;
  o.k = knobs.GetInt("k");
  o.tol = knobs.GetDouble("sinkhorn_tol");
  o.max_iters = knobs.GetInt("sinkhorn_max_iters");
  o.eps = knobs.GetDouble("sinkhorn_eps");
  o.row_shift = knobs.GetBool("sinkhorn_log_domain");
  o.z_coef = knobs.GetDouble("z_coef");
  if (o.k < 1) throw std::invalid_argument("knob sinkhorn.k: must be >= 1");
  if (!(o.tol > 0)) throw std::invalid_argument("knob sinkhorn.sinkhorn_tol: must be > 0");
  if (o.max_iters < 1)
    throw std::invalid_argument("knob sinkhorn.sinkhorn_max_iters: must be >= 1");
  if (!(o.eps >= 0)) throw std::invalid_argument("knob sinkhorn.sinkhorn_eps: must be >= 0");
  return o;
}

SinkhornResult SinkhornPlan(const at::Tensor& logits, const SinkhornOptions& opt) {
  const int64_t n = logits.size(0), e = logits.size(1);
  at::Tensor h = logits.to(at::kFloat);
  if (opt.row_shift && n > 0) h = h - std::get<0>(h.max(1, /*keepdim=*/true));
  const at::Tensor c = at::exp(h);
  at::Tensor d0 = at::ones({n}, at::kFloat), d1 = at::ones({e}, at::kFloat);
  SinkhornResult r;
  if (n == 0) {
    r.plan = c;
    r.converged = true;
    return r;
  }
  at::Tensor d1_old = d1;
  while (r.iterations < opt.max_iters) {
    ++r.iterations;
    d0 = (1.0 / static_cast<double>(n)) / ((c * d1).sum(1) + opt.eps);
    d1 = (1.0 / static_cast<double>(e)) / ((d0.unsqueeze(1) * c).sum(0) + opt.eps);
    const double err = (d1_old - d1).abs().mean().item<double>();
    d1_old = d1;
    if (err <= opt.tol) {
      r.converged = true;
      break;
    }
  }
  r.plan = d1 * c * d0.unsqueeze(1);
  return r;
}

Routing RouteSinkhorn(const at::Tensor& logits, const at::Tensor& pad, const RouteContext& ctx,
                      const SinkhornOptions& opt) {
  const int64_t t = logits.size(0), ne = logits.size(1);
  const int64_t k = std::min<int64_t>(!ctx.training && ctx.eval_k > 0 ? ctx.eval_k : opt.k, ne);
  const at::Tensor act = k == 1 ? at::sigmoid(logits) : at::softmax(logits, -1);
  at::Tensor experts;  // [T, k]
  std::map<std::string, double> stats;
  if (ctx.training) {
    const HostRows rows = ReadRealRows(logits, pad);
    const SinkhornResult plan = SinkhornPlan(rows.scores, opt);
    at::Tensor host = at::zeros({t, k}, at::kLong);  // pads: inactive
    if (rows.index.size(0) > 0) {
      host.index_copy_(0, rows.index, std::get<1>(plan.plan.topk(k, 1)));
    }
    experts = OnDeviceOf(host, logits);
    stats["sinkhorn_iters"] = static_cast<double>(plan.iterations);
    stats["sinkhorn_converged"] = plan.converged ? 1.0 : 0.0;
  } else {
    experts = std::get<1>(act.detach().topk(k, -1));
  }
  const at::Tensor active = ActiveMask(pad, t, logits.device()).unsqueeze(1).expand({t, k});
  Routing r = AssignChoices(experts.contiguous(), act.gather(1, experts), active.contiguous(), ne,
                            0, ctx.defer_counts);
  r.probs = at::softmax(logits, -1);
  if (opt.z_coef > 0) {
    r.losses.push_back({"z", RouterZLoss(logits, PadMask(pad, t, logits.device())), opt.z_coef});
  }
  r.stats = std::move(stats);
  return r;
}

SinkhornRouter::SinkhornRouter(int64_t d_model, int64_t num_experts, SinkhornOptions opt)
    : opt_(opt) {
  weight_ = register_parameter("weight", InitRouterWeight(d_model, num_experts));
}

Routing SinkhornRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  return RouteSinkhorn(x.to(at::kFloat).matmul(weight_), pad, ctx, opt_);
}

namespace {

class SinkhornMethod : public Method {
 public:
  explicit SinkhornMethod(const Knobs& knobs)
      : Method(knobs), opt_(SinkhornOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    SinkhornOptions o = opt_;
    if (layer.top_k > 0) o.k = layer.top_k;  // a fine-grained layout's m*k - K_s
    return std::make_shared<SinkhornRouter>(layer.d_model, layer.num_experts, o);
  }
  int64_t ActiveExperts() const override { return opt_.k; }
  bool TokenChoice() const override { return true; }
  bool RoutesAnyK() const override { return true; }
  std::vector<std::string> KnobsBoundedByExperts() const override { return {"k"}; }
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    SinkhornOptions opt = opt_;
    if (req.k > 0) opt.k = req.k;
    return RouteSinkhorn(logits, pad, req.ctx, opt);
  }

 private:
  SinkhornOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeSinkhornMethod(const Knobs& knobs) {
  return std::make_unique<SinkhornMethod>(knobs);
}

}  // namespace moebench
