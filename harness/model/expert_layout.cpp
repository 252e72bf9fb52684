#include "harness/model/expert_layout.h"

#include <algorithm>
#include <stdexcept>

#include "methods/method.h"

namespace moebench {

std::string TokenChoiceMethods() {
  std::string names;
  for (const MethodInfo& info : MethodRegistry()) {
    if (info.make(Knobs(info.name, info.knobs, {}))->TokenChoice()) {
      names += (names.empty() ? "" : ", ") + info.name;
    }
  }
  return names;
}

namespace {

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

std::string ExpertLayoutProblem(const ModelConfig& cfg, const Method& method, std::string* key) {
  const int64_t m = cfg.expert_granularity, ks = cfg.shared_experts;
  if (ks == 0 && m == 1) return "";
  *key = ks != 0 ? "shared_experts" : "expert_granularity";
  const std::string name = method.knobs().method();
  if (ks < 0) return "must not be negative, got " + Str(ks);
  if (m < 1) {
    *key = "expert_granularity";
    return "must be at least 1, got " + Str(m);
  }
  if (cfg.num_experts <= 0 ||
      method.DenseWidth(cfg.d_ff, std::max<int64_t>(cfg.num_experts, 1)) > 0) {
    return "method " + name + " has no experts to share or split";
  }
  if (!method.TokenChoice()) {
    return "method " + name +
           " is not a token-choice router; shared and fine-grained experts apply to those only (" +
           TokenChoiceMethods() + ")";
  }
  const int64_t width = method.ExpertHidden(cfg.d_ff, cfg.num_experts);
  if (width % m != 0) {
    *key = "expert_granularity";
    return "the expert width d_ff = " + Str(width) + " does not split into " + Str(m) +
           " equal parts";
  }
  const int64_t k = method.ActiveExperts();
  const int64_t top = m * k - ks;
  const std::string rule = "expert_granularity * k - shared_experts = " + Str(m) + " * " + Str(k) +
                           " - " + Str(ks) + " = " + Str(top);
  if (top < 1) {
    *key = "shared_experts";
    return "leaves no routed expert per token (" + rule + ")";
  }
  if (!method.RoutesAnyK() && top != k) {
    return "method " + name + " routes exactly " + Str(k) + " expert" + (k == 1 ? "" : "s") +
           " per token, but " + rule + " (keep it at " + Str(k) +
           ", e.g. shared_experts = expert_granularity * " + Str(k) + " - " + Str(k) +
           ", or use a router that takes any k)";
  }
  if (top > m * cfg.num_experts) {
    *key = "expert_granularity";
    return rule + " routed experts per token exceed the " + Str(m * cfg.num_experts) +
           " routed experts";
  }
  return "";
}

ExpertLayout MoeExpertLayout(const ModelConfig& cfg, const Method& method) {
  std::string key;
  const std::string problem = ExpertLayoutProblem(cfg, method, &key);
  if (!problem.empty()) throw std::invalid_argument(key + ": " + problem);
  ExpertLayout l;
  const int64_t e = std::max<int64_t>(cfg.num_experts, 1);
  const int64_t m = cfg.expert_granularity;
  l.modified = cfg.shared_experts != 0 || m != 1;
  l.routed = cfg.num_experts * m;
  l.hidden = method.ExpertHidden(cfg.d_ff, e) / m;
  l.shared = cfg.shared_experts;
  l.shared_hidden = l.shared * l.hidden;
  l.top_k = l.modified ? m * method.ActiveExperts() - l.shared
                       : std::min<int64_t>(method.ActiveExperts(), cfg.num_experts);
  return l;
}

}  // namespace moebench
