#include "methods/method.h"

#include <algorithm>
#include <stdexcept>

namespace moebench {

ObjectiveOutput Method::Objective(const ForwardFn& forward) const {
  ObjectiveOutput out;
  out.first = forward(0);
  const double n = static_cast<double>(std::max<int64_t>(out.first.ntokens, 1));
  out.loss = out.first.ce_sum / n + out.first.aux;
  return out;
}

Routing Method::RouteLogits(const at::Tensor& /*logits*/, const at::Tensor& /*pad*/,
                            const LogitsRequest& /*req*/) const {
  throw std::invalid_argument("method " + knobs().method() + " has no router to route logits with");
}

}  // namespace moebench
