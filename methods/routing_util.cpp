#include "methods/routing_util.h"

#include <algorithm>
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

namespace moebench {

namespace {
uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t RoutingSeed(const RouteContext& ctx, int group, uint64_t purpose) {
  uint64_t h = SplitMix64(ctx.seed);
  h = SplitMix64(h ^ static_cast<uint64_t>(ctx.step));
  h = SplitMix64(h ^ static_cast<uint64_t>(ctx.layer));
  h = SplitMix64(h ^ static_cast<uint64_t>(static_cast<int64_t>(group)));
  h = SplitMix64(h ^ static_cast<uint64_t>(ctx.pass));
  h = SplitMix64(h ^ purpose);
  return h;
}

at::Generator MakeGenerator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed);
}

int64_t ExpertCapacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                       int64_t min_capacity) {
  const double exact =
      capacity_factor * static_cast<double>(n_tokens) / static_cast<double>(num_experts);
  // Subtract a hair before ceil so that 1.25 * 8 / 2 = 5.000000001 stays 5.
  const int64_t c = static_cast<int64_t>(std::ceil(exact - 1e-9));
  return std::max<int64_t>(c, min_capacity);
}

at::Tensor OnDeviceOf(const at::Tensor& host, const at::Tensor& like) {
  if (like.device().is_cpu()) return host;
  // Pinned memory makes the host-to-device copy asynchronous; the pinned block is kept alive
  // until the copy has run (the caching host allocator records the stream).
  const at::Tensor src = like.device().is_cuda() ? host.pin_memory() : host;
  return src.to(like.device(), /*non_blocking=*/true);
}

at::Tensor CountsOf(const at::Tensor& idx, int64_t n) {
  return at::zeros({n}, idx.options()).index_add_(0, idx, at::ones_like(idx));
}

at::Tensor PadMask(const at::Tensor& pad, int64_t t, at::Device device) {
  if (!pad.defined()) return at::ones({t, 1}, at::TensorOptions().dtype(at::kFloat).device(device));
  return pad.to(at::kFloat).reshape({t, 1});
}

at::Tensor LoadBalanceLoss(const at::Tensor& probs, const at::Tensor& top1,
                           const at::Tensor& mask) {
  const int64_t e = probs.size(1);
  const at::Tensor n_real = mask.sum().clamp_min(1.0);
  const at::Tensor f = (at::one_hot(top1, e).to(at::kFloat) * mask).sum(0) / n_real;
  const at::Tensor p = (probs * mask).sum(0) / n_real;
  return static_cast<double>(e) * (f * p).sum();
}

at::Tensor RouterZLoss(const at::Tensor& logits, const at::Tensor& mask) {
  const at::Tensor lse = at::logsumexp(logits, -1, /*keepdim=*/true);
  return (lse * lse * mask).sum() / mask.sum().clamp_min(1.0);
}

at::Tensor SlotsInOrder(const at::Tensor& expert, const at::Tensor& active, int64_t num_experts,
                        const at::Tensor& start) {
  const at::Tensor onehot = at::one_hot(expert, num_experts) * active.to(at::kLong).unsqueeze(1);
  const at::Tensor pos = onehot.cumsum(0).gather(1, expert.unsqueeze(1)).squeeze(1) - 1;
  if (!start.defined()) return pos;
  return pos + start.index_select(0, expert);
}

at::Tensor ActiveMask(const at::Tensor& pad, int64_t t, at::Device device) {
  return pad.defined() ? pad.to(at::kBool)
                       : at::ones({t}, at::TensorOptions().dtype(at::kBool).device(device));
}

Routing AssignChoices(const at::Tensor& experts, const at::Tensor& weights,
                      const at::Tensor& active, int64_t num_experts, int64_t capacity) {
  const int64_t k = experts.size(1);
  const at::TensorOptions long_opt = experts.options().dtype(at::kLong);
  at::Tensor start = at::zeros({num_experts}, long_opt);
  std::vector<at::Tensor> tok, exp, slot, wt, dtok, dchoice, dexp;
  for (int64_t j = 0; j < k; ++j) {
    const at::Tensor e = experts.select(1, j).contiguous();
    const at::Tensor a = active.select(1, j).contiguous();
    const at::Tensor pos = SlotsInOrder(e, a, num_experts, start);
    const at::Tensor keep = capacity > 0 ? (a & (pos < capacity)) : a;
    const at::Tensor kept = keep.nonzero().squeeze(1);
    const at::Tensor lost = (a & keep.logical_not()).nonzero().squeeze(1);
    const at::Tensor kept_e = e.index_select(0, kept);
    tok.push_back(kept);
    exp.push_back(kept_e);
    slot.push_back(pos.index_select(0, kept));
    wt.push_back(weights.select(1, j).index_select(0, kept));
    dtok.push_back(lost);
    dchoice.push_back(at::full({lost.size(0)}, j, long_opt));
    dexp.push_back(e.index_select(0, lost));
    start = start + CountsOf(kept_e, num_experts);
  }
  Routing r;
  r.token = at::cat(tok);
  r.expert = at::cat(exp);
  r.slot = at::cat(slot);
  r.weight = at::cat(wt);
  r.capacity = capacity;
  r.dropped_token = at::cat(dtok);
  r.dropped_choice = at::cat(dchoice);
  r.dropped_expert = at::cat(dexp);
  r.choices = active.sum().item<int64_t>();
  r.dropped = r.dropped_token.size(0);
  return r;
}

}  // namespace moebench
