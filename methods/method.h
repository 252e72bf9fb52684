// A routing method: a router factory per MoE layer, the expert shape, and the training
// objective hook (THOR's two passes live there, not in the trainer).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "methods/knobs.h"
#include "methods/router.h"

namespace moebench {

struct LayerSpec {
  int index = 0;  // MoE layer index over the model
  bool decoder = false;
  int64_t d_model = 0;
  int64_t d_ff = 0;
  int64_t num_experts = 0;
  int64_t vocab = 0;  // the model's vocabulary (hash tables); 0: not known
  // Experts per token the router picks, when set: a fine-grained layout's m*k - K_s (Note
  // [Shared and fine-grained experts] in harness/model/expert_layout.h). 0: the method's own.
  // Only methods with RoutesAnyK() are given one.
  int64_t top_k = 0;
};

// One forward pass of the model over a batch, as the objective hook sees it.
struct ForwardOutput {
  at::Tensor logits;       // [B, L, V]
  at::Tensor ce_sum;       // label-smoothed cross entropy summed over target tokens
  at::Tensor nll_sum;      // plain negative log-likelihood summed over target tokens
  at::Tensor aux;          // weighted sum of the MoE layers' auxiliary losses
  at::Tensor target_mask;  // [B, L] bool
  // What the summed losses are divided by: the target tokens of the step's whole batch (every
  // micro-batch, every rank). `normaliser`, when defined, holds it as a 0-dim tensor on the
  // logits' device, so that a captured step divides by each replay's count (Note [Replayable
  // optimizer step] in harness/train/replayable_adam.cpp); else ntokens is used.
  int64_t ntokens = 0;
  at::Tensor normaliser;
};

// max(ntokens, 1) of one forward, as a 0-dim tensor of its ce_sum's type and device.
at::Tensor LossNormaliser(const ForwardOutput& out);
using ForwardFn = std::function<ForwardOutput(int pass)>;

struct ObjectiveOutput {
  at::Tensor loss;  // what backward() is called on
  ForwardOutput first;
  // Extra per-step metrics (e.g. "thor_skl"), 0-dim tensors on the loss's device, read with
  // the step's losses (never on the host within the step: a graph step replays them).
  std::map<std::string, at::Tensor> metrics;
};

// What `moebench route` asks of a method: route given router logits as one group, the way the
// method's router routes the logits it computes (Method::RouteLogits).
struct LogitsRequest {
  RouteContext ctx;         // training, seed, step, worker topology and group
  int64_t real_tokens = 0;  // real tokens among the logits' rows (the capacity rules' n)
  int64_t capacity = -1;    // slots per expert (expert choice: k); -1: the method's own rule
  int64_t k = 0;            // experts per token (or expert choice's k); 0: the method's default
};

class Method {
 public:
  explicit Method(Knobs knobs) : knobs_(std::move(knobs)) {}
  virtual ~Method() = default;
  virtual std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) = 0;
  // Hidden width of each expert (SMoE-Dropout splits the dense FFN: d_ff / E).
  virtual int64_t ExpertHidden(int64_t d_ff, int64_t /*num_experts*/) const { return d_ff; }
  // Experts a token activates (for the "active parameters" count).
  virtual int64_t ActiveExperts() const { return 1; }
  // A method without experts (the dense baseline, methods/dense.h) returns the width of the
  // plain FFN that stands where the MoE layers would be; 0 (the default): an MoE layer there.
  virtual int64_t DenseWidth(int64_t /*d_ff*/, int64_t /*num_experts*/) const { return 0; }
  // Integer knobs that count experts per token and so cannot exceed the number of experts
  // (checked with the rest of the run spec, harness/spec/run_spec_check.h).
  virtual std::vector<std::string> KnobsBoundedByExperts() const { return {}; }
  // A token-choice router (each token picks its experts): it takes shared and fine-grained
  // experts (run-spec fields shared_experts, expert_granularity; harness/model/expert_layout.h).
  virtual bool TokenChoice() const { return false; }
  // The router routes LayerSpec::top_k experts per token when it is set (any k). Without it a
  // fine-grained layout must keep expert_granularity * k - shared_experts at ActiveExperts().
  virtual bool RoutesAnyK() const { return false; }
  // The training objective. Default: one pass, mean label-smoothed CE + auxiliary losses.
  virtual ObjectiveOutput Objective(const ForwardFn& forward) const;
  // The method's routing of fp32 logits [T, E] (`moebench route`): capacity, policies and
  // randomness as its router applies them, without router weights. Default: refused, the
  // method has no router. Errors name the request's keys.
  virtual Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                              const LogitsRequest& req) const;
  const Knobs& knobs() const { return knobs_; }

 private:
  Knobs knobs_;
};

// A method whose router is one class built from parsed options that carry a training and an
// evaluation capacity factor and a minimum capacity (Switch, GShard): the router per layer and
// the capacity of a `moebench route` request, written once.
template <typename Options, typename RouterType>
class RouterOptionsMethod : public Method {
 public:
  RouterOptionsMethod(const Knobs& knobs, Options opt) : Method(knobs), opt_(std::move(opt)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<RouterType>(layer.d_model, layer.num_experts, opt_);
  }

 protected:
  // The request's capacity, else `rule` (methods/capacity.h) at the training or evaluation
  // capacity factor.
  int64_t RequestCapacity(const LogitsRequest& req, int64_t num_experts,
                          int64_t (*rule)(double, int64_t, int64_t, int64_t)) const {
    if (req.capacity >= 0) return req.capacity;
    const double cf = req.ctx.training ? opt_.capacity_factor : opt_.eval_capacity_factor;
    return rule(cf, req.real_tokens, num_experts, opt_.min_capacity);
  }

  Options opt_;
};

struct MethodInfo {
  std::string name;
  std::string summary;
  std::vector<KnobSpec> knobs;
  std::unique_ptr<Method> (*make)(const Knobs& knobs);
};

// The registry: an explicit table (methods/registry.cpp), not static self-registration.
const std::vector<MethodInfo>& MethodRegistry();
// Throws, listing the known names, when `name` is not registered.
const MethodInfo& FindMethod(const std::string& name);
std::unique_ptr<Method> MakeMethod(const std::string& name,
                                   const std::map<std::string, std::string>& overrides);

}  // namespace moebench
