// Pieces shared by the token-choice routers: slot positions, the Switch-style aux loss and the
// z-loss. The capacity rules are in methods/capacity.h.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>

#include "methods/capacity.h"
#include "methods/router.h"

namespace moebench {

// Real-token mask as float [T, 1] (all ones on `device` if pad is undefined).
at::Tensor PadMask(const at::Tensor& pad, int64_t t, at::Device device = at::kCPU);

// Switch / GShard code form: E * sum_e f_e * P_e with f from the one-hot top-1 choices
// (before capacity) and P the mean router probability, both over real tokens.
at::Tensor LoadBalanceLoss(const at::Tensor& probs, const at::Tensor& top1, const at::Tensor& mask);

// ST-MoE router z-loss: mean over real tokens of logsumexp(logits)^2.
at::Tensor RouterZLoss(const at::Tensor& logits, const at::Tensor& mask);

// Slot of each (token, chosen expert) in token order, counting from `start[e]`:
// returns [T] int64 positions for the choice `expert` ([T] int64), among tokens with
// `active` ([T] bool). Inactive tokens get a position but must be discarded by the caller.
at::Tensor SlotsInOrder(const at::Tensor& expert, const at::Tensor& active, int64_t num_experts,
                        const at::Tensor& start);

// Token-choice assignment of k choices per token. Slots are given choice by choice (every
// first choice of the group before any second choice: GShard's priority) and in token order
// within a choice. capacity 0 means no limit. experts, weights, active: [T, k].
// The real tokens of a group: the context's count when the caller knows it on the host (the
// MoE layer, from the batch's lengths), else pad's (a host read on a GPU), else t.
int64_t RealTokens(const at::Tensor& pad, int64_t t, const RouteContext& ctx);

// Positions of the kept and of the dropped (active, not kept) entries of 1-D masks, each in
// ascending order, with one host read (three counts) instead of two `nonzero` calls. defer:
// no read; `kept` lists every position (kept, then dropped, then inactive), `dropped` is
// undefined and `counts` holds the three counts on the device (see Routing::deferred).
struct KeptAndDropped {
  at::Tensor kept, dropped, counts;
};
KeptAndDropped SplitKeptAndDropped(const at::Tensor& keep, const at::Tensor& active,
                                   bool defer = false);

Routing AssignChoices(const at::Tensor& experts, const at::Tensor& weights,
                      const at::Tensor& active, int64_t num_experts, const Capacity& capacity,
                      bool defer = false);

// Any-k evaluation (RouteContext::eval_k): each real token goes to its k most probable experts
// (k at most the number of experts), weighted by their probabilities, renormalised to sum to 1
// over the k chosen when `renormalize`; no capacity, so nothing drops. `r.probs` is set.
Routing RouteAnyK(const at::Tensor& logits, const at::Tensor& pad, int64_t k, bool renormalize,
                  const RouteContext& ctx);

// A deferred Routing made ordinary: reads its three counts (one host read) and keeps the kept
// choices; choices and dropped are set, the dropped_* lists stay undefined. No-op otherwise.
void ResolveDeferred(Routing& r);
// Cuts a deferred Routing's lists to their first `kept` entries (the kept choices, counted
// elsewhere) and clears `deferred`.
void KeepFirstChoices(Routing& r, int64_t kept);

// [A] bool on the device: which entries of a deferred Routing's lists are kept (the first
// deferred[0]).
at::Tensor DeferredKeptMask(const Routing& r);

// The real tokens of a group as a bool [T] mask (all true on `device` if pad is undefined).
at::Tensor ActiveMask(const at::Tensor& pad, int64_t t, at::Device device = at::kCPU);

// A generator seeded for this decision (see Note [Routing randomness]). It is a CPU generator:
// draw into a CPU tensor and move the result with OnDeviceOf, so that every device routes
// with the same random numbers.
at::Generator MakeGenerator(uint64_t seed);
// A generator of `device`'s own kind seeded for this decision: for draws too large to make on
// the CPU and copy (switch's jitter: one number per input element). On a GPU its numbers differ
// from the CPU generator's (another algorithm, Philox), so such draws route alike on devices of
// one kind, not across kinds; MakeGenerator(seed) on the CPU.
at::Generator MakeDeviceGenerator(uint64_t seed, at::Device device);

// Where a seeded draw is made (Note [Routing randomness]): on the CPU and copied, so that every
// device routes with the same numbers, or on the device (draws too large to copy).
enum class DrawOn { kHost, kDevice };

// Uniform numbers in [lo, hi) with the sizes, dtype and strides of `like`, on its device, for
// decision (group, purpose): drawn by a generator seeded for it (on the CPU and copied, or on
// the device with DrawOn::kDevice: MakeDeviceGenerator), or with ctx.graph_random from the
// device's default generator.
at::Tensor RoutingUniform(const RouteContext& ctx, int group, uint64_t purpose,
                          const at::Tensor& like, double lo, double hi,
                          DrawOn seeded_on = DrawOn::kHost);
// A random permutation of [0, n) (int64, on the device of `like`) for decision (group, purpose):
// randperm by a generator seeded for it, on the CPU and copied; with ctx.graph_random the order
// of n uniform numbers from the device's default generator.
at::Tensor RoutingPermutation(const RouteContext& ctx, int group, uint64_t purpose, int64_t n,
                              const at::Tensor& like);

// `host` (a CPU tensor) on the device of `like`: `host` itself when `like` is on the CPU, else
// an asynchronous copy (from pinned memory on CUDA).
at::Tensor OnDeviceOf(const at::Tensor& host, const at::Tensor& like);

// How many times each value in [0, n) occurs in the int64 index tensor `idx`: [n] int64 on
// idx's device. bincount's values without its host synchronisation (it reads min and max).
at::Tensor CountsOf(const at::Tensor& idx, int64_t n);

// The rows of `scores` ([T, E], any device) that belong to real tokens, as a float32 CPU tensor
// [n, E], and their row indices (int64 CPU [n]): one host read, of the scores with the pad mask
// as an extra column (BASE and Sinkhorn solve their assignment on the host).
struct HostRows {
  at::Tensor scores, index;
};
HostRows ReadRealRows(const at::Tensor& scores, const at::Tensor& pad);

}  // namespace moebench
