// The experts of an MoE block: how many are routed, how many a token activates, their width,
// and the shared experts beside them (METHODS-MODERN.md section 2, DeepSeekMoE). One rule for
// the model, the parameter counts (`moebench sizes`), the compute model and the run-spec check.
#pragma once

#include <cstdint>
#include <string>

#include "harness/model/sizes.h"

namespace moebench {

class Method;

// Note [Shared and fine-grained experts]: with expert_granularity m and shared_experts K_s
// (run-spec fields, section "model"), each of the E experts is split into m of width d_ff/m:
// m*E routed experts, of which a token activates m*k - K_s (k: the method's experts per
// token), and K_s shared experts of width d_ff/m that every token passes through, built as one
// FFN of width K_s*d_ff/m (as DeepSeek-V3, torchtitan and Megatron build them). The active
// FFN width per token is (m*k - K_s) * d_ff/m + K_s * d_ff/m = k * d_ff: the expert FLOPs of
// the plain top-k layer, whatever m and K_s are. The routed experts are m*E, not m*E - K_s
// (the code convention; the paper carves the shared ones out of the m*E, which would leave
// counts such as 7 that do not split over 2 or 4 workers): the shared FFN's parameters come on
// top of the plain layer's, and `moebench sizes` counts them. What grows with m: the router's
// width (m*E logits) and the all-to-all copies per token (m*k - K_s instead of k); shared
// experts run on the token's own worker and send no bytes. Only token-choice routers take a
// layout (Method::TokenChoice); one that routes a fixed k (switch 1, gshard 2) needs
// m*k - K_s = k, e.g. switch with m = 2 and K_s = 1; topk-style routers route any k
// (Method::RoutesAnyK, LayerSpec::top_k).
struct ExpertLayout {
  int64_t routed = 0;         // routed experts per MoE layer
  int64_t top_k = 0;          // routed experts a token activates
  int64_t hidden = 0;         // width of each routed expert
  int64_t shared = 0;         // shared experts
  int64_t shared_hidden = 0;  // width of the one FFN the shared experts form (0: none)
  bool modified = false;      // shared or fine-grained experts are in use
  // FFN width a token passes through in an MoE block: what matches compute.
  int64_t active_hidden() const { return top_k * hidden + shared_hidden; }
};

// "" when `method` takes the layout of `cfg`, else what is wrong, with the run-spec key it is
// about in *key (shared_experts or expert_granularity).
std::string ExpertLayoutProblem(const ModelConfig& cfg, const Method& method, std::string* key);
// The registered methods that take shared and fine-grained experts (Method::TokenChoice), comma
// separated.
std::string TokenChoiceMethods();

// The layout; throws std::invalid_argument "<key>: <problem>" when the method does not take it.
ExpertLayout MoeExpertLayout(const ModelConfig& cfg, const Method& method);

}  // namespace moebench
