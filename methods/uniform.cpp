#include "methods/uniform.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "methods/routing_util.h"

namespace moebench {

std::vector<KnobSpec> UniformKnobSpecs() {
  return {{"k", "1", "experts per token", "harness (DeepSpeed/Tutel-style benchmark baseline)"}};
}

Routing RouteUniform(int64_t t, const at::Tensor& pad, int64_t num_experts, int64_t k,
                     at::Device device, bool defer) {
  k = std::min(k, num_experts);
  const at::TensorOptions opt = at::TensorOptions().device(device);
  const at::Tensor i = at::arange(t, opt.dtype(at::kLong)).unsqueeze(1);
  const at::Tensor experts =
      (i + at::arange(k, opt.dtype(at::kLong)).unsqueeze(0)).remainder(num_experts);
  const at::Tensor weights = at::full({t, k}, 1.0 / static_cast<double>(k), opt.dtype(at::kFloat));
  const at::Tensor active = ActiveMask(pad, t, device).unsqueeze(1).expand({t, k}).contiguous();
  return AssignChoices(experts.contiguous(), weights, active, num_experts, 0, defer);
}

Routing UniformRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const int64_t k = (!ctx.training && ctx.eval_k > 0) ? ctx.eval_k : k_;
  return RouteUniform(x.size(0), pad, num_experts_, k, x.device(), ctx.defer_counts);
}

namespace {

class UniformMethod : public Method {
 public:
  explicit UniformMethod(const Knobs& knobs) : Method(knobs), k_(knobs.GetInt("k")) {
    if (k_ < 1) throw std::invalid_argument("knob k: must be >= 1");
  }
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<UniformRouter>(layer.num_experts, k_);
  }
  int64_t ActiveExperts() const override { return k_; }
  // k experts per token drawn over the layer's routed experts: shared and fine-grained experts
  // with expert_granularity * k - shared_experts = k.
  bool TokenChoice() const override { return true; }
  std::vector<std::string> KnobsBoundedByExperts() const override { return {"k"}; }
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& /*req*/) const override {
    return RouteUniform(logits.size(0), pad, logits.size(1), k_);
  }

 private:
  int64_t k_;
};

}  // namespace

std::unique_ptr<Method> MakeUniformMethod(const Knobs& knobs) {
  return std::make_unique<UniformMethod>(knobs);
}

}  // namespace moebench
