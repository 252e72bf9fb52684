// Generic top-k token choice: the one token-choice pipeline of METHODS-MODERN.md section 0,
// with sigmoid or softmax scores (section 3), a capacity for any k with DeepSpeed topkgating's
// rules or no capacity at all (dropless, section 7), and node-limited selection (section 8).
// aux_free (methods/aux_free.h) is this pipeline plus a selection bias.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "methods/knobs.h"
#include "methods/method.h"
#include "methods/router.h"

namespace moebench {

// Knob `score_func`: s = softmax(h) over the experts, or sigmoid(h) elementwise.
enum class ScoreFunc { kSoftmax, kSigmoid };

// Knob `route_norm`: how the k chosen weights are normalised (Note [Top-k gate normalisation]).
enum class RouteNorm {
  kAuto,      // none at k = 1; softmax: kept (DeepSpeed); sigmoid: selected (DeepSeek-V3)
  kNone,      // w = s
  kSelected,  // w = s / sum of s over the k chosen, before capacity (V3, Megatron, torchtitan)
  kKept,      // w = s / sum of s over the choices that keep a slot (DeepSpeed topkgating)
};

// Knob `drop_policy`: who keeps a slot when an expert overflows (DeepSpeed topkgating).
enum class DropPolicy {
  kProbs,     // each expert keeps the tokens with the highest scores (DeepSpeed default)
  kPosition,  // each expert keeps its earliest tokens in token order
};

// Knob `node_score`: a group's score in node-limited routing (METHODS-MODERN.md section 8).
enum class NodeScore {
  kSumTopk,  // the sum of the group's top k/M selection scores (DeepSeek-V3 paper, Megatron)
  kTop2,     // the sum of its top 2 (DeepSeek-V3 code, torchtitan)
  kMax,      // its best selection score (DeepSeek-V2 device-limited)
};

struct TopkOptions {
  int64_t k = 2;
  double capacity_factor = 1.0;       // C = max(min_capacity, ceil(k * cf * n / E))
  double eval_capacity_factor = 0.0;  // <= 0: inference never drops
  int64_t min_capacity = 4;
  bool dropless = false;  // no capacity at all: every token keeps its k experts
  DropPolicy drop_policy = DropPolicy::kProbs;
  ScoreFunc score_func = ScoreFunc::kSoftmax;
  RouteNorm route_norm = RouteNorm::kAuto;
  double route_scale = 1.0;
  double aux_coef = 0.01;
  double z_coef = 0.0;
  int64_t node_limit_topk = 0;    // M: groups a token may reach; 0 = no limit
  int64_t node_limit_groups = 0;  // G; 0 = the topology's nodes
  NodeScore node_score = NodeScore::kSumTopk;
};

// The knobs of `topk`, and those every top-k arm shares (aux_free adds its own to them, with
// its own defaults: see AuxFreeKnobSpecs).
std::vector<KnobSpec> TopkKnobSpecs();
// Reads the knobs TopkKnobSpecs lists; the string knobs parsed once (errors name the knob).
TopkOptions TopkOptionsFromKnobs(const Knobs& knobs);

// The normalisation route_norm = auto stands for with this score function and k.
RouteNorm EffectiveRouteNorm(const TopkOptions& opt, int64_t k);

// Slots per expert for a group of n real tokens: 0 (no capacity) when dropless, in incremental
// decoding, or at inference with eval_capacity_factor <= 0; else TopkCapacity (capacity.h).
int64_t TopkGroupCapacity(const TopkOptions& opt, int64_t k, int64_t n_real, int64_t num_experts,
                          bool training, bool incremental);

// s = score_func(logits), fp32 [T, E].
at::Tensor TopkScores(const at::Tensor& logits, ScoreFunc score_func);

// The k experts of each token [T, k] from scores s [T, E] plus an optional selection bias b [E]
// (undefined: none), restricted to node_limit_topk groups when set. topo: the groups' default
// (its nodes). Indices only: no gradient flows through the selection.
at::Tensor SelectExperts(const at::Tensor& scores, const at::Tensor& bias, int64_t k,
                         const TopkOptions& opt, const Topology& topo);

// The generic pipeline on fp32 logits [T, E] of one group: scores, selection (with `bias` if
// defined), weights from the unbiased scores, capacity (0: none), assignments, aux losses.
// k: experts per token (0: opt.k). demand, if given: [E] int64 choices per expert of the real
// tokens before capacity (what aux_free's bias update counts).
Routing RouteTopk(const at::Tensor& logits, const at::Tensor& pad, const Capacity& capacity,
                  int64_t k, const TopkOptions& opt, const RouteContext& ctx,
                  const at::Tensor& bias = {}, at::Tensor* demand = nullptr);

class TopkRouter : public Router {
 public:
  TopkRouter(int64_t d_model, int64_t num_experts, TopkOptions opt);
  Routing Route(const at::Tensor& x, const at::Tensor& pad, const RouteContext& ctx) override;
  int64_t CapacityFor(int64_t tokens, int64_t real_tokens, const RouteContext& ctx) const override;

 protected:
  // Experts per token in this forward (any-k evaluation: ctx.eval_k at inference).
  int64_t KFor(const RouteContext& ctx) const;
  int64_t num_experts_;
  TopkOptions opt_;
  at::Tensor weight_;  // [d, E] fp32
};

// Method pieces shared with aux_free: the logits route of `moebench route` and the run-spec
// checks of the knobs against the number of experts.
Routing RouteTopkLogits(const TopkOptions& opt, const at::Tensor& logits, const at::Tensor& pad,
                        const LogitsRequest& req, const at::Tensor& bias = {});

// The registry's factory (methods/registry.cpp).
std::unique_ptr<Method> MakeTopkMethod(const Knobs& knobs);

}  // namespace moebench
