// The method registry: one row per method, with its knobs (name, default, where the default
// comes from). Each method's class is in its own file pair (methods/<name>.{h,cpp}).
#include <set>
#include <stdexcept>

#include "methods/aux_free.h"
#include "methods/base.h"
#include "methods/dense.h"
#include "methods/expert_choice.h"
#include "methods/gating_dropout.h"
#include "methods/gshard.h"
#include "methods/hash.h"
#include "methods/method.h"
#include "methods/sinkhorn.h"
#include "methods/smoe_dropout.h"
#include "methods/switch.h"
#include "methods/thor.h"
#include "methods/topk.h"
#include "methods/uniform.h"

namespace moebench {

namespace {

std::vector<MethodInfo> BuildRegistry() {
  std::vector<MethodInfo> table = {
      {"switch", "top-1, capacity factor, token dropping, load-balancing aux loss (Switch)",
       SwitchKnobSpecs(), &MakeSwitchMethod},
      {"gshard",
       "top-2, second expert kept w.p. min(1, 2*g2n), first choices fill slots first (GShard)",
       GShardKnobSpecs(), &MakeGShardMethod},
      {"expert_choice",
       "experts pick their top-k tokens in the encoder; GShard top-2 in the decoder (EC)",
       ExpertChoiceKnobSpecs(), &MakeExpertChoiceMethod},
      {"thor", "no router: random experts, two passes, symmetric-KL consistency loss (THOR)",
       ThorKnobSpecs(), &MakeThorMethod},
      {"smoe_dropout",
       "frozen random router, k grows during training, experts split the dense FFN (SMoE-Dropout)",
       SmoeDropoutKnobSpecs(), &MakeSmoeDropoutMethod},
      {"gating_dropout",
       "a base router whose all-to-all is skipped w.p. p per layer and step (Gating Dropout)",
       GatingDropoutKnobSpecs(), &MakeGatingDropoutMethod},
      {"uniform", "forced uniform routing: the best-case throughput baseline, not a quality method",
       UniformKnobSpecs(), &MakeUniformMethod},
      {"topk",
       "top-k token choice, any k: DeepSpeed topkgating capacity, softmax or sigmoid scores, "
       "dropless and node-limited options",
       TopkKnobSpecs(), &MakeTopkMethod},
      {"aux_free",
       "top-k with a per-expert selection bias moved after each step towards balance, no aux "
       "loss (Wang et al. 2024, DeepSeek-V3)",
       AuxFreeKnobSpecs(), &MakeAuxFreeMethod},
      {"dense",
       "no MoE layer: a plain FFN of width d_ff (sizing = active) or E x d_ff (total) in its place",
       DenseKnobSpecs(), &MakeDenseMethod},
      {"base",
       "BASE layers: balanced assignment (each expert exactly n/E tokens) in training, greedy "
       "top-1 at inference, weight sigmoid(affinity) (Lewis et al. 2021)",
       BaseKnobSpecs(), &MakeBaseMethod},
      {"sinkhorn",
       "top-k of Sinkhorn-balanced exp(logits) in training, of the logits at inference; weight "
       "sigmoid (k=1) or softmax of the logits (S-BASE; Megatron-Core)",
       SinkhornKnobSpecs(), &MakeSinkhornMethod},
      {"hash", "a fixed seeded token-id -> expert table, weight 1, no router (Hash layers)",
       HashKnobSpecs(), &MakeHashMethod},
  };
  std::set<std::string> seen;
  for (const auto& info : table) {
    if (!seen.insert(info.name).second) {
      throw std::logic_error("method registry: duplicate method '" + info.name + "'");
    }
  }
  return table;
}

}  // namespace

const std::vector<MethodInfo>& MethodRegistry() {
  static const std::vector<MethodInfo> registry = BuildRegistry();
  return registry;
}

const MethodInfo& FindMethod(const std::string& name) {
  std::string known;
  for (const auto& info : MethodRegistry()) {
    if (info.name == name) return info;
    known += (known.empty() ? "" : ", ") + info.name;
  }
  throw std::invalid_argument("unknown method '" + name + "' (known: " + known + ")");
}

std::unique_ptr<Method> MakeMethod(const std::string& name,
                                   const std::map<std::string, std::string>& overrides) {
  const MethodInfo& info = FindMethod(name);
  return info.make(Knobs(name, info.knobs, overrides));
}

}  // namespace moebench
