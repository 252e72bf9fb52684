// Hash layers (Roller et al. 2021): each token goes to the expert a fixed table gives its input
// token id, with combine weight 1; no router parameters, no aux loss, no capacity.
// METHODS-MODERN.md section 6. Note [Hash tables] in methods/hash.cpp says which hash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// Which table (knob `hash_kind`).
enum class HashKind {
  kRandomBalanced,  // a seeded random permutation of the experts in every block of E ids
  kRandom,          // every id draws its expert independently and uniformly (seeded)
};

struct HashOptions {
  HashKind kind = HashKind::kRandomBalanced;
  bool seed_per_layer = false;  // one table per MoE layer instead of one per side
};

std::vector<KnobSpec> HashKnobSpecs();
HashOptions HashOptionsFromKnobs(const Knobs& knobs);

// The expert of each token id in [0, vocab) for these options and this run seed, side
// (encoder or decoder) and layer: a [vocab] int64 CPU tensor. An id's expert does not depend on
// `vocab` (Note [Hash tables]), so a longer table extends a shorter one.
at::Tensor HashTable(int64_t vocab, int64_t num_experts, const HashOptions& opt, uint64_t seed,
                     bool decoder, int layer);

// The token ids of one routing group of `n` tokens: the slice of ctx.token_ids (the ids of the
// whole layer input, set by the Transformer) that the MoE layer gave this group (Note [Token
// blocks] in harness/comm/topology.h). Throws when the context has no token ids.
at::Tensor GroupTokenIds(const RouteContext& ctx, int64_t n);

// Routes the tokens with these ids ([T] int64, on the device of the result) by `table` (on the
// same device): one assignment per real token, weight 1, no capacity.
Routing RouteByTable(const at::Tensor& table, const at::Tensor& ids, const at::Tensor& pad,
                     int64_t num_experts, bool defer = false);

class HashRouter : public Router {
 public:
  // vocab: the model's vocabulary (0: unknown, then the table covers the largest id seen).
  HashRouter(int64_t num_experts, int64_t vocab, HashOptions opt)
      : num_experts_(num_experts), vocab_(vocab), opt_(opt) {}
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;

 private:
  // The table for this context on `device`, built once per (seed, side, layer, size, device).
  const at::Tensor& Table(const RouteContext& ctx, int64_t size, at::Device device);

  int64_t num_experts_, vocab_;
  HashOptions opt_;
  at::Tensor table_;
  uint64_t table_key_ = 0;
};

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeHashMethod(const Knobs& knobs);

}  // namespace moebench
