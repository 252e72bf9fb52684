// The router interface: tokens of one group in, a flat list of assignments out.
// No [tokens, experts, capacity] tensor exists on this path (the dense einsum form,
// EinsumDispatchCombine in harness/moe/dispatch.h, is the tests' oracle).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "harness/comm/topology.h"

namespace moebench {

// One rank's share of a batch, as lengths known on the host: its sentences' real tokens and
// their padded length, for the encoder's and the decoder's input. A process group's static-shape
// MoE path sizes every rank's exchange buffers from them (Note [Static-shape path] in
// harness/moe/static_path.cpp) instead of exchanging capacities.
struct RankShare {
  std::vector<int64_t> src_lengths, tgt_lengths;
  int64_t src_len = 0, tgt_len = 0;  // positions per sentence (the padded length)
};

struct RouteContext {
  bool training = false;
  int64_t step = 0;
  int layer = 0;             // MoE layer index over the whole model (encoder first)
  bool decoder = false;      // the layer sits in the decoder (causal: no look-ahead allowed)
  uint64_t seed = 0;         // the run's seed; see Note [Routing randomness]
  int group = 0;             // which worker's tokens this group is
  Topology topology;         // worker layout, for methods whose routing depends on it
  int64_t eval_k = 0;        // any-k evaluation: experts per token at inference (0 = default)
  int pass = 0;              // forward pass index within one update (THOR runs two)
  bool incremental = false;  // one decoding step at a time: capacity must not drop tokens
  int64_t total_steps = 0;   // the run's max_steps (schedules such as SMoE-Dropout's k)
  // Sentence layout of the layer's input, for per-sentence decisions (THOR at inference):
  // the layer sees total_tokens = B * tokens_per_sentence tokens, split into worker blocks.
  int64_t total_tokens = 0;
  int64_t tokens_per_sentence = 0;
  int64_t position = 0;  // decoding position (incremental decoding)
  int64_t beam = 1;      // beam size: incremental rows are sentence * beam + hypothesis
  // Real (non-pad) tokens per sentence of the batch, known on the host (the trainer sets them;
  // right-padded sentences): the MoE layer counts each group's real tokens from them instead
  // of reading `pad` back from the device. Null: not known.
  std::shared_ptr<const std::vector<int64_t>> src_lengths, tgt_lengths;
  // This group's real tokens when known on the host (set by the MoE layer; -1: count `pad`).
  int64_t real_tokens = -1;
  // The MoE layer sets it: a router may return its choices with the kept count left on the
  // device (Routing::deferred) instead of reading it. Routers called directly do not defer.
  bool defer_counts = false;
  // Whether the MoE layer computes its routing statistics of this forward (router entropy, node
  // copies): the trainer asks for them at the steps whose metrics it logs only, so that the
  // other steps launch none of their kernels. Routing and losses do not depend on it.
  bool statistics = true;
  // The token ids of the layer's input, [total_tokens] int64 on its device, flattened like its
  // tokens (set by the Transformer; undefined when unknown). Hash routing reads them: Note
  // [Token ids at routing] in methods/hash.cpp.
  at::Tensor token_ids;
  // Every rank's share of this forward's batch ([world size], the trainer's, on a process
  // group; null: not known). RankShare says why.
  std::shared_ptr<const std::vector<RankShare>> rank_shares;
  // Note [Bounded capacity]: buffers at the capacity of a group whose every token is real, the
  // group's real capacity applied on the device. Graph steps set it (run-spec field cuda_graph:
  // Note [Training step graphs] in harness/train/step_graphs.cpp).
  bool bounded_capacity = false;
  // Note [Routing randomness], graph steps: draw from the device's default generator.
  bool graph_random = false;
};

// Note [Bounded capacity]
// A CUDA graph replays the kernels of the step it captured with that step's host scalars, but a
// group's capacity comes from its real tokens, which change from batch to batch. With
// RouteContext::bounded_capacity a capacity router sizes its slots for the group's padded length
// (slots = CapacityFor(tokens, tokens): every token real, the most any batch of that shape can
// need, since every capacity rule grows with the real tokens) and keeps a choice only below the
// group's real capacity, a device scalar looked up from the number of real tokens (the sum of
// `pad`, never read) in a table of CapacityFor(tokens, n) for n = 0..tokens made once per shape.
// So the routing decisions are the exact capacity's, and every shape and host scalar depends on
// the batch's shape only: Routing::capacity is the slots, which the padded exchange then sends
// (its wire bytes are the bound's). tests/torch/test_graph_replay.cpp checks both.
struct Capacity {
  int64_t slots = 0;  // slots per expert, a host value (0: no capacity)
  at::Tensor limit;   // bounded: the real capacity, an int64 device scalar; else undefined
  Capacity() = default;
  Capacity(int64_t s) : slots(s) {}  // NOLINT(google-explicit-constructor): an exact capacity
  // pos < the capacity, elementwise.
  at::Tensor Below(const at::Tensor& pos) const {
    return limit.defined() ? pos < limit : pos < slots;
  }
};

// Note [Routing randomness]: every random routing decision draws from a generator seeded by
// (run seed, step, layer, group, pass, purpose), so the same run routes bit-identically, and a
// decision that must agree across workers (the gating-dropout coin) uses group = -1.
// Graph steps (RouteContext::graph_random) draw instead from the default generator of the
// input's device, on that device: the one dropout draws from, and the only one a CUDA graph
// replays with new numbers (it advances the generator's offset at every replay; a generator
// seeded at capture would replay the captured step's draws forever). Such a run is still
// reproducible from its seed (the trainer seeds the default generators), but its draws are not
// the seeded ones. RoutingUniform and RoutingPermutation (methods/routing_util.h) draw either
// way.
uint64_t RoutingSeed(const RouteContext& ctx, int group, uint64_t purpose);

struct AuxLoss {
  std::string name;  // "aux", "z"
  at::Tensor value;  // unscaled, as the paper writes it (a uniform router's aux loss is 1)
  double coef = 0;   // its weight in the training objective
};

struct Routing {
  // Assignments: token t (index within the group) goes to expert e at buffer slot s with
  // combine weight w. Tokens without an assignment contribute 0 (the residual carries them).
  at::Tensor token;      // [A] int64
  at::Tensor expert;     // [A] int64
  at::Tensor slot;       // [A] int64, < capacity
  at::Tensor weight;     // [A] float32, differentiable through the router
  int64_t capacity = 0;  // slots per expert in this group (0: no fixed capacity)
  std::vector<AuxLoss> losses;

  // Statistics, for metrics only.
  at::Tensor probs;     // [T, E] float32 router probabilities (undefined: no router)
  int64_t dropped = 0;  // (token, choice) pairs removed by capacity
  int64_t choices = 0;  // (token, choice) pairs before capacity
  // (token, choice, expert) of every choice removed by capacity (for `moebench route`).
  at::Tensor dropped_token, dropped_choice, dropped_expert;
  // Router diagnostics (e.g. capped expert choice's residual), host values; the MoE layer
  // averages them over routing groups into the layer's routing metrics ("router.<name>").
  std::map<std::string, double> stats;
  bool skip_exchange = false;  // gating dropout: every assignment stays on its own worker
  bool skip_experts = false;   // gate-expert-drop: the layer adds nothing

  // Deferred counts (only with RouteContext::defer_counts; Note [Host synchronisation] in
  // harness/moe/moe_layer.cpp): when defined, an int64 [3] on the device -- the kept, dropped
  // and inactive choices -- and token/expert/slot/weight list every choice, the kept ones first
  // (in the order an undeferred Routing lists them), then the dropped, then the inactive;
  // `choices`, `dropped` and the dropped_* lists are not filled in. The MoE layer keeps the
  // first `kept` after its one host read; ResolveDeferred (methods/routing_util.h) reads them.
  at::Tensor deferred;
};

class Router : public torch::nn::Module {
 public:
  // x: [T, d] the tokens of one group; pad: [T] bool, true for real tokens (may be undefined:
  // all real).
  virtual Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) = 0;
  // The capacity (Routing::capacity) that Route gives a group of `tokens` rows of which
  // `real_tokens` are real, in context `ctx`; 0 when it routes without one (the default). Route
  // takes its capacity from here, so the two agree; the static-shape path on ranks sizes the
  // other ranks' buffers with it, without a collective. It may read only the counts given and
  // the fields of ctx every rank shares (training, step, seed, layer, topology, eval_k,
  // incremental, pass), never this rank's own tokens.
  virtual int64_t CapacityFor(int64_t /*tokens*/, int64_t /*real_tokens*/,
                              const RouteContext& /*ctx*/) const {
    return 0;
  }
  // The slots Route gives a group (Routing::capacity): CapacityFor, or with
  // ctx.bounded_capacity the bound of every real count (Note [Bounded capacity]).
  int64_t BufferCapacity(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const {
    return CapacityFor(tokens, ctx.bounded_capacity ? tokens : real_tokens, ctx);
  }

 protected:
  // The capacity a Route of `tokens` rows with real tokens `pad` applies: CapacityFor of the
  // real count (ctx.real_tokens, else counted), or with ctx.bounded_capacity the bound and the
  // real capacity on the device (Note [Bounded capacity]).
  Capacity ResolveCapacity(int64_t tokens, const at::Tensor& pad, const RouteContext& ctx);

 private:
  // Note [Bounded capacity]'s tables, by (tokens, training, eval_k, incremental, device).
  std::map<std::string, at::Tensor> capacity_tables_;
};

}  // namespace moebench
