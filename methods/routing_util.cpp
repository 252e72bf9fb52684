#include "methods/routing_util.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/CPUGeneratorImpl.h>

#include "harness/host_read.h"
#include "harness/torch_compat.h"

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

at::Generator MakeDeviceGenerator(uint64_t seed, at::Device device) {
  if (device.is_cpu()) return MakeGenerator(seed);
  // A fresh generator of the device's kind: a clone of its default one, reseeded (which also
  // resets its offset), so the draws depend on `seed` alone.
  at::Generator gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

at::Tensor RoutingUniform(const RouteContext& ctx, int group, uint64_t purpose,
                          const at::Tensor& like, double lo, double hi, DrawOn seeded_on) {
  if (ctx.graph_random) {
    return at::empty_like(like).uniform_(lo, hi,
                                         at::globalContext().defaultGenerator(like.device()));
  }
  const uint64_t seed = RoutingSeed(ctx, group, purpose);
  if (seeded_on == DrawOn::kDevice) {
    return at::empty_like(like).uniform_(lo, hi, MakeDeviceGenerator(seed, like.device()));
  }
  return OnDeviceOf(at::empty_like(like, at::TensorOptions().device(at::kCPU))
                        .uniform_(lo, hi, MakeGenerator(seed)),
                    like);
}

at::Tensor RoutingPermutation(const RouteContext& ctx, int group, uint64_t purpose, int64_t n,
                              const at::Tensor& like) {
  if (ctx.graph_random) {
    return at::empty({n}, like.options().dtype(at::kFloat))
        .uniform_(0.0, 1.0, at::globalContext().defaultGenerator(like.device()))
        .argsort();
  }
  return OnDeviceOf(at::randperm(n, MakeGenerator(RoutingSeed(ctx, group, purpose)),
                                 at::TensorOptions().dtype(at::kLong)),
                    like);
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
  // A one-hot by scatter: at::one_hot checks its input's minimum on the host (on the CPU).
  const at::Tensor chosen = at::zeros({top1.size(0), e}, probs.options().dtype(at::kFloat))
                                .scatter_(1, top1.unsqueeze(1), 1.0);
  const at::Tensor f = (chosen * mask).sum(0) / n_real;
  const at::Tensor p = (probs * mask).sum(0) / n_real;
  return static_cast<double>(e) * (f * p).sum();
}

at::Tensor RouterZLoss(const at::Tensor& logits, const at::Tensor& mask) {
  const at::Tensor lse = at::logsumexp(logits, -1, /*keepdim=*/true);
  return (lse * lse * mask).sum() / mask.sum().clamp_min(1.0);
}

at::Tensor SlotsInOrder(const at::Tensor& expert, const at::Tensor& active, int64_t num_experts,
                        const at::Tensor& start) {
  // [E, T]: each expert's running count of its active tokens, a scan along the inner dimension.
  // (The [T, E] one-hot scanned along dim 0 took 5.5 of a 32768-token layer's 11 ms of kernel
  // time on an H100: CUDA's outer-dimension scan is slow. Integer counts: the same slots.)
  const at::Tensor hits =
      (at::arange(num_experts, expert.options()).unsqueeze(1) == expert.unsqueeze(0)) &
      active.to(at::kBool).unsqueeze(0);
  at::Tensor pos = hits.to(at::kLong).cumsum(1).gather(0, expert.unsqueeze(0)).squeeze(0) - 1;
  if (!start.defined()) return pos;
  return pos + start.index_select(0, expert);
}

at::Tensor ActiveMask(const at::Tensor& pad, int64_t t, at::Device device) {
  return pad.defined() ? pad.to(at::kBool)
                       : at::ones({t}, at::TensorOptions().dtype(at::kBool).device(device));
}

int64_t RealTokens(const at::Tensor& pad, int64_t t, const RouteContext& ctx) {
  if (ctx.real_tokens >= 0) return ctx.real_tokens;
  if (!pad.defined()) return t;
  return HostRead(pad.sum()).item<int64_t>();
}

Capacity Router::ResolveCapacity(int64_t tokens, const at::Tensor& pad, const RouteContext& ctx) {
  if (!ctx.bounded_capacity) return CapacityFor(tokens, RealTokens(pad, tokens, ctx), ctx);
  Capacity cap(CapacityFor(tokens, tokens, ctx));
  if (cap.slots <= 0 || !pad.defined()) return cap;  // no capacity, or every token real
  const std::string key = std::to_string(tokens) + "/" + std::to_string(ctx.training) + "/" +
                          std::to_string(ctx.eval_k) + "/" + std::to_string(ctx.incremental) + "/" +
                          pad.device().str();
  at::Tensor& table = capacity_tables_[key];
  if (!table.defined()) {
    std::vector<int64_t> by_count(static_cast<size_t>(tokens + 1));
    for (int64_t n = 0; n <= tokens; ++n) {
      by_count[n] = CapacityFor(tokens, n, ctx);
      if (by_count[n] > cap.slots) {
        throw std::logic_error("bounded capacity: " + std::to_string(n) + " real tokens of " +
                               std::to_string(tokens) + " get " + std::to_string(by_count[n]) +
                               " slots, more than all " + std::to_string(tokens) + " real (" +
                               std::to_string(cap.slots) + ")");
      }
    }
    table = at::tensor(by_count, at::TensorOptions().dtype(at::kLong)).to(pad.device());
  }
  cap.limit = table.index_select(0, pad.sum().to(at::kLong).reshape({1})).reshape({});
  return cap;
}

KeptAndDropped SplitKeptAndDropped(const at::Tensor& keep, const at::Tensor& active, bool defer) {
  // Kept first, then dropped, then inactive; a stable sort keeps the original order within
  // each, as two `nonzero` calls would, and one copy of three counts replaces their two host
  // reads and the `active.sum()` (Note [Host synchronisation] in harness/moe/moe_layer.cpp).
  // keep implies active: 0 kept, 1 dropped, 2 inactive.
  const at::Tensor key = keep.logical_not().to(at::kLong) + active.logical_not().to(at::kLong);
  const at::Tensor order = compat::StableArgsort(key);
  const at::Tensor counts = CountsOf(key, 3);
  if (defer) return {order, at::Tensor(), counts};
  const at::Tensor n = HostRead(counts);
  const int64_t kept = n.data_ptr<int64_t>()[0], dropped = n.data_ptr<int64_t>()[1];
  return {order.narrow(0, 0, kept), order.narrow(0, kept, dropped), at::Tensor()};
}

void ResolveDeferred(Routing& r) {
  if (!r.deferred.defined()) return;
  const at::Tensor n = HostRead(r.deferred);
  const int64_t kept = n.data_ptr<int64_t>()[0], dropped = n.data_ptr<int64_t>()[1];
  KeepFirstChoices(r, kept);
  r.choices = kept + dropped;
  r.dropped = dropped;
}

void KeepFirstChoices(Routing& r, int64_t kept) {
  r.token = r.token.narrow(0, 0, kept);
  r.expert = r.expert.narrow(0, 0, kept);
  r.slot = r.slot.narrow(0, 0, kept);
  r.weight = r.weight.narrow(0, 0, kept);
  r.deferred = at::Tensor();
}

at::Tensor DeferredKeptMask(const Routing& r) {
  return at::arange(r.token.size(0), r.token.options()) < r.deferred.narrow(0, 0, 1);
}

Routing RouteAnyK(const at::Tensor& logits, const at::Tensor& pad, int64_t k, bool renormalize,
                  const RouteContext& ctx) {
  const int64_t t = logits.size(0);
  const int64_t num_experts = logits.size(1);
  const at::Tensor probs = at::softmax(logits, -1);
  auto [w, e] = probs.topk(std::min<int64_t>(k, num_experts), -1);
  if (renormalize) w = w / w.sum(-1, true);
  const at::Tensor active = ActiveMask(pad, t, logits.device()).unsqueeze(1).expand({t, e.size(1)});
  Routing r = AssignChoices(e, w, active.contiguous(), num_experts, 0, ctx.defer_counts);
  r.probs = probs;
  return r;
}

Routing AssignChoices(const at::Tensor& experts, const at::Tensor& weights,
                      const at::Tensor& active, int64_t num_experts, const Capacity& capacity,
                      bool defer) {
  const int64_t t = experts.size(0);
  const int64_t k = experts.size(1);
  at::Tensor start = at::zeros({num_experts}, experts.options().dtype(at::kLong));
  std::vector<at::Tensor> slots, keeps;
  for (int64_t j = 0; j < k; ++j) {
    const at::Tensor e = experts.select(1, j).contiguous();
    const at::Tensor a = active.select(1, j).contiguous();
    const at::Tensor pos = SlotsInOrder(e, a, num_experts, start);
    const at::Tensor keep = capacity.slots > 0 ? (a & capacity.Below(pos)) : a;
    start = start + at::zeros_like(start).index_add_(0, e, keep.to(at::kLong));
    slots.push_back(pos);
    keeps.push_back(keep);
  }
  // Choice-major flat lists: index c * T + t is token t's choice c.
  const at::Tensor expert_flat = experts.t().reshape({-1});
  const at::Tensor weight_flat = weights.t().reshape({-1});
  const KeptAndDropped split =
      SplitKeptAndDropped(at::cat(keeps), active.t().reshape({-1}).to(at::kBool), defer);
  Routing r;
  r.token = split.kept.remainder(t);
  r.expert = expert_flat.index_select(0, split.kept);
  r.slot = at::cat(slots).index_select(0, split.kept);
  r.weight = weight_flat.index_select(0, split.kept);
  r.capacity = capacity.slots;
  if (defer) {
    r.deferred = split.counts;
    return r;
  }
  r.dropped_token = split.dropped.remainder(t);
  r.dropped_choice = at::div(split.dropped, t, "floor");
  r.dropped_expert = expert_flat.index_select(0, split.dropped);
  r.choices = split.kept.size(0) + split.dropped.size(0);
  r.dropped = split.dropped.size(0);
  return r;
}

HostRows ReadRealRows(const at::Tensor& scores, const at::Tensor& pad) {
  const int64_t t = scores.size(0), e = scores.size(1);
  const at::Tensor s = scores.detach().to(at::kFloat);
  if (!pad.defined()) return {HostRead(s), at::arange(t, at::kLong)};
  const at::Tensor host = HostRead(at::cat({s, pad.to(at::kFloat).reshape({t, 1})}, 1));
  const at::Tensor index = host.select(1, e).gt(0.5).nonzero().view({-1});
  return {host.narrow(1, 0, e).index_select(0, index), index};
}

}  // namespace moebench
