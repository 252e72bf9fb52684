#include "harness/train/replayable_adam.h"

#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace moebench {

// Note [Replayable optimizer step]
// A CUDA graph replays the kernels it captured with the arguments they had at capture. LibTorch's
// Adam passes its per-step numbers as host scalars: the learning rate, and per parameter the
// bias corrections 1 - beta^t of its step count t, the step size lr / (1 - beta1^t) handed to
// addcdiv_. A graph captured at step t would replay step t's numbers forever (PyTorch's Python
// Adam has `capturable=True` for this; LibTorch's has no such option). So the trainer updates
// with this class instead:
//
// - the training step is a device counter, and the learning rate of inverse_sqrt is computed
//   from it on the device (InverseSqrtLr below, the host formula's operations in its order);
// - every parameter's Adam step count t is a row of one device vector, incremented for the
//   parameters that have a gradient (as LibTorch counts them: a parameter that had no gradient
//   in a step keeps its count); the bias corrections and step sizes of all parameters come from
//   it in a few vector ops;
// - each parameter's update is LibTorch's, in its order, with the step size moved from
//   addcdiv_'s scalar into its numerator: LibTorch's CPU kernel computes p + (value * m) / d
//   in the tensor's type with value = -lr / bc1; this computes (m * (-lr / bc1)) / d and adds
//   it, the same products in the same order, and the bias corrections come from pow on the
//   device instead of std::pow. On the CPU the parameters agree with LibTorch's Adam to 1e-6
//   relative over 8 steps (ReplayableAdam.UpdatesAsLibTorchsAdam); CUDA kernels order some
//   of these products differently (addcdiv as p + value * (m / d), a division by a host scalar
//   as a product with its reciprocal), so there they agree to rounding.
//
// The state stays in the torch::optim::Adam object (exp_avg, exp_avg_sq, and the host step
// count, kept equal to the device's), so checkpoints save and load it unchanged; after a load
// Sync() re-reads it. The states of all parameters are made when this object is, not at their
// first gradient, so that a step makes no tensor a graph would have to own. The gradient
// clipping before it is on the device as well (ClipGlobalGradNorm); the trainer reads the norm
// with the step's losses, after the update (harness/train/training.cpp).

at::Tensor InverseSqrtLr(double base, const at::Tensor& step, int64_t warmup) {
  const at::Tensor s = step.clamp_min(1.0);
  if (warmup <= 0) return at::full_like(s, base) / s.sqrt();
  const at::Tensor w = at::full_like(s, static_cast<double>(warmup));
  return at::minimum(s / w, (w / s).sqrt()) * base;
}

namespace {

// The key of a parameter's state in torch::optim::Adam: a string of its TensorImpl's address in
// LibTorch 1.x (c10::guts::to_string), the address itself in 2.x.
template <class Map>
typename Map::key_type StateKey(const Map& /*state*/, const at::Tensor& p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

}  // namespace

torch::optim::AdamParamState* AdamState(torch::optim::Adam& adam, const at::Tensor& p) {
  auto& state = adam.state();
  auto it = state.find(StateKey(state, p));
  return it == state.end() ? nullptr : static_cast<torch::optim::AdamParamState*>(it->second.get());
}

ReplayableAdam::ReplayableAdam(torch::optim::Adam& adam, double base_lr, int64_t warmup)
    : adam_(adam), base_lr_(base_lr), warmup_(warmup) {
  if (adam.param_groups().size() != 1) {
    throw std::invalid_argument("ReplayableAdam: expected one parameter group, got " +
                                std::to_string(adam.param_groups().size()));
  }
  const auto& options =
      static_cast<const torch::optim::AdamOptions&>(adam.param_groups()[0].options());
  if (options.weight_decay() != 0 || options.amsgrad()) {
    throw std::invalid_argument("ReplayableAdam: weight decay and amsgrad are not supported");
  }
  params_ = adam.param_groups()[0].params();
  Sync();
}

void ReplayableAdam::Sync() {
  auto& state = adam_.state();
  states_.clear();
  std::vector<double> counts;
  for (const at::Tensor& p : params_) {
    auto key = StateKey(state, p);
    auto it = state.find(key);
    if (it == state.end()) {
      auto s = std::make_unique<torch::optim::AdamParamState>();
      s->step(0);
      s->exp_avg(at::zeros_like(p, at::MemoryFormat::Preserve));
      s->exp_avg_sq(at::zeros_like(p, at::MemoryFormat::Preserve));
      it = state.emplace(key, std::move(s)).first;
    }
    auto* s = static_cast<torch::optim::AdamParamState*>(it->second.get());
    states_.push_back(s);
    counts.push_back(static_cast<double>(s->step()));
  }
  const at::TensorOptions opt = at::TensorOptions()
                                    .dtype(at::kDouble)
                                    .device(params_.empty() ? at::kCPU : params_[0].device());
  steps_ = at::tensor(counts, at::kDouble).to(opt.device());
  all_ = at::ones({static_cast<int64_t>(params_.size())}, opt);
  step_ = at::zeros({}, opt);
  host_step_ = 0;
}

std::vector<int64_t> ReplayableAdam::WithGradients() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].grad().defined()) out.push_back(static_cast<int64_t>(i));
  }
  return out;
}

at::Tensor ReplayableAdam::Step(int64_t step) {
  at::NoGradGuard no_grad;
  if (host_step_ == step - 1) {
    step_.add_(1);
  } else {
    step_.fill_(static_cast<double>(step));
  }
  host_step_ = step;
  const at::Tensor lr = InverseSqrtLr(base_lr_, step_, warmup_);
  const std::vector<int64_t> update = WithGradients();
  last_update_ = update;
  if (update.empty()) return lr;
  if (update.size() == params_.size()) {
    steps_.add_(all_);
  } else {  // a mask made on the host: a copy to the device, no read
    std::vector<double> mask(params_.size(), 0.0);
    for (int64_t i : update) mask[i] = 1.0;
    steps_.add_(at::tensor(mask, at::kDouble).to(steps_.device()));
  }
  for (int64_t i : update) states_[i]->step(states_[i]->step() + 1);

  const auto& options =
      static_cast<const torch::optim::AdamOptions&>(adam_.param_groups()[0].options());
  const double beta1 = std::get<0>(options.betas()), beta2 = std::get<1>(options.betas());
  const at::Tensor bias_correction1 = 1 - at::pow(beta1, steps_);
  const at::Tensor bias_correction2_sqrt = (1 - at::pow(beta2, steps_)).sqrt();
  const at::Tensor neg_step_size = lr.neg() / bias_correction1;
  for (int64_t i : update) {
    at::Tensor& p = params_[i];
    const at::Tensor& grad = p.grad();
    at::Tensor& exp_avg = states_[i]->exp_avg();
    at::Tensor& exp_avg_sq = states_[i]->exp_avg_sq();
    exp_avg.mul_(beta1).add_(grad, 1 - beta1);
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    const at::Tensor denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt[i]).add_(options.eps());
    p.addcdiv_(exp_avg * neg_step_size[i], denom);
  }
  return lr;
}

void ReplayableAdam::Replayed(int64_t step, const std::vector<int64_t>& updated) {
  if (host_step_ != step - 1) {
    throw std::logic_error("ReplayableAdam: replayed step " + std::to_string(step) +
                           " after step " + std::to_string(host_step_) +
                           ": a captured update counts consecutive steps only");
  }
  host_step_ = step;
  last_update_ = updated;
  for (int64_t i : updated) states_[i]->step(states_[i]->step() + 1);
}

}  // namespace moebench
