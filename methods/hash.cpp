#include "methods/hash.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "harness/comm/topology.h"
#include "harness/host_read.h"
#include "methods/routing_util.h"

namespace moebench {

// Note [Hash tables]: Roller et al.'s "Random Hash" is a fixed random token-id -> expert table
// drawn at initialisation. The table here is a pure function of (run seed, side, layer when
// hash_seed_per_layer, id, E), so training, evaluation, decoding, every worker and rank and
// `moebench route` agree without storing or exchanging it:
//   key(id) = splitmix64(s ^ splitmix64(id)), s = splitmix64 chain of (seed, purpose, side,
//   layer + 1 or 0);
//   random:          expert(id) = key(id) mod E (each id independent; loads binomial);
//   random_balanced: the ids of block b = [b*E, (b+1)*E) sorted by (key, id); the j-th of them
//                    gets expert j. Every block is a random permutation of the experts, so any
//                    vocabulary of V ids gives each expert floor(V/E) or ceil(V/E) ids (exactly
//                    V/E when E divides V), and an id's expert does not depend on V.
// The side (encoder or decoder) gets its own table, shared by that side's MoE layers unless
// hash_seed_per_layer. Not implemented: the paper's frequency-balanced table (it needs the
// training split's token frequencies; METHODS-MODERN.md section 6), bigram/previous/position
// keys and MultiHash.
//
// Note [Token ids at routing]: a hash router needs the input token id of every token it routes,
// which the hidden states do not carry. The Transformer puts the ids of each MoE layer's input in
// RouteContext::token_ids, flattened like the layer's [B * L] tokens: the source ids in the
// encoder, the decoder input (BOS, y_1, ...) in the decoder, the step's tokens in incremental
// decoding. The MoE layer passes the context on unchanged and hands each router a group of
// tokens: the whole input on a rank, block `ctx.group` (Note [Token blocks]) on one process
// playing W workers. GroupTokenIds finds the group's ids from the same block rule.
namespace {

constexpr uint64_t kPurposeHashTable = 0x4a5e;

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t TableSeed(uint64_t seed, bool decoder, int layer, bool per_layer) {
  uint64_t h = SplitMix64(SplitMix64(seed) ^ kPurposeHashTable);
  h = SplitMix64(h ^ (decoder ? 1ULL : 0ULL));
  return SplitMix64(h ^ (per_layer ? static_cast<uint64_t>(layer) + 1 : 0ULL));
}

uint64_t IdKey(uint64_t table_seed, int64_t id) {
  return SplitMix64(table_seed ^ SplitMix64(static_cast<uint64_t>(id)));
}

}  // namespace

std::vector<KnobSpec> HashKnobSpecs() {
  return {
      {"hash_kind", "random_balanced",
       "token-id -> expert table: random_balanced (each block of E ids a random permutation of "
       "the experts: exactly balanced over the vocabulary) | random (independent uniform draws)",
       "paper: Random Hash (Roller et al. 2021); balancing over ids: harness"},
      {"hash_seed_per_layer", "false", "a table per MoE layer instead of one per side",
       "harness (not checked in the paper)"},
  };
}

HashOptions HashOptionsFromKnobs(const Knobs& knobs) {
  HashOptions o;
  const std::string& kind = knobs.GetString("hash_kind");
  if (kind == "random_balanced") {
    o.kind = HashKind::kRandomBalanced;
  } else if (kind == "random") {
    o.kind = HashKind::kRandom;
  } else if (kind == "balanced") {
    throw std::invalid_argument(
        "knob hash.hash_kind: balanced (the paper's frequency-balanced table) needs the training "
        "split's token frequencies and is not implemented; use random_balanced or random");
  } else {
    throw std::invalid_argument("knob hash.hash_kind: expected random_balanced or random, got '" +
                                kind + "'");
  }
  o.seed_per_layer = knobs.GetBool("hash_seed_per_layer");
  return o;
}

at::Tensor HashTable(int64_t vocab, int64_t num_experts, const HashOptions& opt, uint64_t seed,
                     bool decoder, int layer) {
  if (vocab < 0 || num_experts < 1) throw std::invalid_argument("HashTable: bad sizes");
  const uint64_t s = TableSeed(seed, decoder, layer, opt.seed_per_layer);
  at::Tensor table = at::empty({vocab}, at::kLong);
  int64_t* out = table.data_ptr<int64_t>();
  const uint64_t e = static_cast<uint64_t>(num_experts);
  if (opt.kind == HashKind::kRandom) {
    for (int64_t id = 0; id < vocab; ++id) out[id] = static_cast<int64_t>(IdKey(s, id) % e);
    return table;
  }
  std::vector<std::pair<uint64_t, int64_t>> block(num_experts);
  for (int64_t first = 0; first < vocab; first += num_experts) {
    for (int64_t j = 0; j < num_experts; ++j) block[j] = {IdKey(s, first + j), first + j};
    std::sort(block.begin(), block.end());
    for (int64_t j = 0; j < num_experts; ++j) {
      if (block[j].second < vocab) out[block[j].second] = j;
    }
  }
  return table;
}

at::Tensor GroupTokenIds(const RouteContext& ctx, int64_t n) {
  const at::Tensor& ids = ctx.token_ids;
  if (!ids.defined()) {
    throw std::invalid_argument(
        "hash routing needs the token ids of the layer's input (RouteContext::token_ids, set by "
        "the Transformer; Note [Token ids at routing])");
  }
  const int64_t total = ids.size(0);
  if (n == total) return ids;
  const int w = std::max(ctx.topology.workers, 1);
  const int64_t b0 = GroupBegin(total, ctx.tokens_per_sentence, w, ctx.group);
  const int64_t b1 = GroupBegin(total, ctx.tokens_per_sentence, w, ctx.group + 1);
  if (b1 - b0 != n) {
    throw std::logic_error("hash routing: group " + std::to_string(ctx.group) + " has " +
                           std::to_string(n) + " tokens, its block of the " +
                           std::to_string(total) + " token ids " + std::to_string(b1 - b0));
  }
  return ids.narrow(0, b0, n);
}

Routing RouteByTable(const at::Tensor& table, const at::Tensor& ids, const at::Tensor& pad,
                     int64_t num_experts, bool defer) {
  const int64_t t = ids.size(0);
  const at::Tensor experts = table.index_select(0, ids.to(at::kLong)).unsqueeze(1).contiguous();
  const at::Tensor weights = at::ones({t, 1}, table.options().dtype(at::kFloat));
  const at::Tensor active = ActiveMask(pad, t, table.device()).unsqueeze(1).contiguous();
  return AssignChoices(experts, weights, active, num_experts, 0, defer);
}

const at::Tensor& HashRouter::Table(const RouteContext& ctx, int64_t size, at::Device device) {
  const uint64_t key = TableSeed(ctx.seed, ctx.decoder, ctx.layer, opt_.seed_per_layer);
  if (!table_.defined() || table_key_ != key || table_.size(0) < size ||
      table_.device() != device) {
    table_ = HashTable(size, num_experts_, opt_, ctx.seed, ctx.decoder, ctx.layer).to(device);
    table_key_ = key;
  }
  return table_;
}

Routing HashRouter::Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) {
  const at::Tensor ids = GroupTokenIds(ctx, x.size(0)).to(x.device());
  int64_t size = vocab_;
  if (size <= 0) {
    // No vocabulary given (a router built without a model): cover the largest id seen.
    size = ids.numel() > 0 ? HostRead(ids.max()).item<int64_t>() + 1 : 1;
  }
  return RouteByTable(Table(ctx, size, x.device()), ids, pad, num_experts_, ctx.defer_counts);
}

namespace {

class HashMethod : public Method {
 public:
  explicit HashMethod(const Knobs& knobs) : Method(knobs), opt_(HashOptionsFromKnobs(knobs)) {}
  std::shared_ptr<Router> MakeRouter(const LayerSpec& layer) override {
    return std::make_shared<HashRouter>(layer.num_experts, layer.vocab, opt_);
  }
  // One expert per token from the table over the layer's routed experts: takes shared and
  // fine-grained experts with expert_granularity * 1 - shared_experts = 1.
  bool TokenChoice() const override { return true; }
  // `moebench route`: the logits only give the tokens and experts; the request's token_ids
  // (and decoder, layer) choose the experts.
  Routing RouteLogits(const at::Tensor& logits, const at::Tensor& pad,
                      const LogitsRequest& req) const override {
    const at::Tensor& ids = req.ctx.token_ids;
    if (!ids.defined()) {
      throw std::invalid_argument(
          "method hash routes by token id, not by logits: give \"token_ids\", one per logits row");
    }
    if (ids.size(0) != logits.size(0)) {
      throw std::invalid_argument("\"token_ids\" has " + std::to_string(ids.size(0)) +
                                  " entries for " + std::to_string(logits.size(0)) + " tokens");
    }
    const int64_t vocab = ids.numel() > 0 ? ids.max().item<int64_t>() + 1 : 1;
    const at::Tensor table =
        HashTable(vocab, logits.size(1), opt_, req.ctx.seed, req.ctx.decoder, req.ctx.layer);
    return RouteByTable(table, ids, pad, logits.size(1));
  }

 private:
  HashOptions opt_;
};

}  // namespace

std::unique_ptr<Method> MakeHashMethod(const Knobs& knobs) {
  return std::make_unique<HashMethod>(knobs);
}

}  // namespace moebench
