#include "methods/dense.h"

#include <stdexcept>

namespace moebench {

std::vector<KnobSpec> DenseKnobSpecs() {
  return {
      {"sizing", "active",
       "FFN width where the MoE layers would be: active = d_ff (FLOPs of top-1) | total = "
       "num_experts * d_ff (parameters of the experts)",
       "harness (THOR and SMoE-Dropout compare against a dense Transformer)"},
  };
}

std::unique_ptr<Method> MakeDenseMethod(const Knobs& knobs) {
  return std::make_unique<DenseMethod>(knobs);
}

DenseMethod::DenseMethod(const Knobs& knobs) : Method(knobs) {
  const std::string sizing = knobs.GetString("sizing");
  if (sizing != "active" && sizing != "total") {
    throw std::invalid_argument("knob sizing: expected active or total, got '" + sizing + "'");
  }
  total_ = sizing == "total";
}

std::shared_ptr<Router> DenseMethod::MakeRouter(const LayerSpec& layer) {
  throw std::logic_error("dense: no router (MoE layer " + std::to_string(layer.index) +
                         " asked for one)");
}

int64_t DenseMethod::DenseWidth(int64_t d_ff, int64_t num_experts) const {
  return total_ ? d_ff * std::max<int64_t>(num_experts, 1) : d_ff;
}

Routing DenseMethod::RouteLogits(const at::Tensor& /*logits*/, const at::Tensor& /*pad*/,
                                 const LogitsRequest& /*req*/) const {
  throw std::invalid_argument(
      "method dense has no router to route logits with (the dense baseline has no MoE layer)");
}

}  // namespace moebench
