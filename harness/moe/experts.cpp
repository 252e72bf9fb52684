#include "harness/moe/experts.h"

#include <cmath>

namespace moebench {

Experts::Experts(int64_t num_experts, int64_t d_model, int64_t d_hidden)
    : num_experts_(num_experts), d_model_(d_model), d_hidden_(d_hidden) {
  // nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
  const double a1 = 1.0 / std::sqrt(static_cast<double>(d_model));
  const double a2 = 1.0 / std::sqrt(static_cast<double>(d_hidden));
  w1 = register_parameter("w1", at::empty({num_experts, d_model, d_hidden}).uniform_(-a1, a1));
  b1 = register_parameter("b1", at::empty({num_experts, d_hidden}).uniform_(-a1, a1));
  w2 = register_parameter("w2", at::empty({num_experts, d_hidden, d_model}).uniform_(-a2, a2));
  b2 = register_parameter("b2", at::empty({num_experts, d_model}).uniform_(-a2, a2));
}

at::Tensor Experts::ForwardOne(int64_t e, const at::Tensor& x) const {
  at::Tensor h = at::addmm(b1[e], x, w1[e]).relu_();
  return at::addmm(b2[e], h, w2[e]);
}

at::Tensor Experts::ForwardGrouped(const at::Tensor& x, const std::vector<int64_t>& counts) const {
  std::vector<at::Tensor> outs;
  outs.reserve(counts.size());
  int64_t offset = 0;
  for (int64_t e = 0; e < static_cast<int64_t>(counts.size()); ++e) {
    const int64_t n = counts[e];
    if (n == 0) continue;
    outs.push_back(ForwardOne(e, x.narrow(0, offset, n)));
    offset += n;
  }
  if (outs.empty()) return at::zeros({0, d_model_}, x.options());
  if (outs.size() == 1) return outs[0];
  return at::cat(outs, 0);
}

at::Tensor Experts::ForwardBatched(const at::Tensor& x) const {
  at::Tensor h = at::baddbmm(b1.unsqueeze(1), x, w1).relu_();
  return at::baddbmm(b2.unsqueeze(1), h, w2);
}

}  // namespace moebench
