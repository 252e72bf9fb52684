#include "methods/method.h"

#include <algorithm>
#include <stdexcept>

namespace moebench {

at::Tensor LossNormaliser(const ForwardOutput& out) {
  // In the losses' type (a 0-dim float and a 0-dim double would divide in double): on the CPU
  // the division a host scalar gives (which CUDA turns into a product with its reciprocal).
  const at::TensorOptions opt =
      at::TensorOptions().dtype(out.ce_sum.scalar_type()).device(out.ce_sum.device());
  if (out.normaliser.defined()) return out.normaliser.clamp_min(1.0).to(opt);
  return at::full({}, static_cast<double>(std::max<int64_t>(out.ntokens, 1)), opt);
}

ObjectiveOutput Method::Objective(const ForwardFn& forward) const {
  ObjectiveOutput out;
  out.first = forward(0);
  out.loss = out.first.ce_sum / LossNormaliser(out.first) + out.first.aux;
  return out;
}

Routing Method::RouteLogits(const at::Tensor& /*logits*/, const at::Tensor& /*pad*/,
                            const LogitsRequest& /*req*/) const {
  throw std::invalid_argument("method " + knobs().method() + " has no router to route logits with");
}

}  // namespace moebench
