#include "harness/spec/run_spec_check.h"

#include <algorithm>
#include <memory>

#include "harness/model/expert_layout.h"
#include "harness/model/sizes.h"
#include "methods/method.h"

namespace moebench {

bool CheckSpecField(const std::string& field, const nlohmann::json& value, std::string* why) {
  const SpecField* f = FindSpecField(field);
  return f == nullptr || f->check(value, why);
}

std::vector<SpecProblem> CheckRunSpec(const RunSpec& spec) {
  std::vector<SpecProblem> out;
  // Every field, those the JSON leaves out at their defaults too.
  nlohmann::json full = RunSpec::FieldDefaults();
  const nlohmann::json given = spec.ToJson();
  for (auto it = given.begin(); it != given.end(); ++it) full[it.key()] = it.value();
  for (const SpecField& f : RunSpecFields()) {
    std::string why;
    try {
      if (!f.check(full.at(f.key), &why)) out.push_back({f.key, why});
    } catch (const nlohmann::json::exception& e) {
      out.push_back({f.key, std::string("wrong type (") + e.what() + ")"});
    }
  }
  for (SpecProblem& p : CheckSpecRelations(spec)) out.push_back(std::move(p));
  return out;
}
std::vector<SpecProblem> CheckSpecRelations(const RunSpec& spec) {
  std::vector<SpecProblem> out;
  if (spec.world_size > 1 && spec.workers != 1 && spec.workers != spec.world_size) {
    out.push_back({"workers", "with world_size " + std::to_string(spec.world_size) +
                                  " each rank is one worker: workers must be " +
                                  std::to_string(spec.world_size) + " or unset"});
  }
  if (spec.moe_path == "static" && spec.exchange != "padded") {
    out.push_back({"moe_path",
                   "static needs exchange = padded (its buffers have fixed shapes), "
                   "got exchange = " +
                       spec.exchange});
  }
  if (spec.cuda_graph == "on" && spec.moe_path != "static") {
    out.push_back({"cuda_graph",
                   "on needs moe_path = static (a graph replays fixed shapes), got "
                   "moe_path = " +
                       spec.moe_path});
  }
  // Relations that need the method and the model: the knobs' own checks, and counts that
  // cannot exceed the number of experts.
  int64_t experts = spec.num_experts;
  ModelConfig cfg;
  try {
    cfg = SizePreset(spec.size);
    if (experts <= 0) experts = cfg.num_experts;
  } catch (const std::exception& e) {
    out.push_back({"size", e.what()});
    return out;
  }
  std::unique_ptr<Method> method;
  try {
    method = MakeMethod(spec.method, spec.knobs);
  } catch (const std::exception& e) {
    out.push_back({spec.knobs.empty() ? "method" : "knobs", e.what()});
    return out;
  }
  const bool dense = method->DenseWidth(1, std::max<int64_t>(experts, 1)) > 0;
  // Shared and fine-grained experts: token-choice methods only; counts bounded by the routed
  // experts (expert_granularity * num_experts).
  cfg.num_experts = experts;
  cfg.shared_experts = spec.shared_experts;
  cfg.expert_granularity = spec.expert_granularity;
  std::string layout_key;
  const std::string layout_problem = ExpertLayoutProblem(cfg, *method, &layout_key);
  if (!layout_problem.empty()) {
    out.push_back({layout_key, layout_problem});
  } else if (!dense) {
    experts = MoeExpertLayout(cfg, *method).routed;
  }
  if (!dense) {
    for (int64_t k : spec.eval_k) {
      if (k > experts) {
        out.push_back({"eval_k", "k = " + std::to_string(k) + " exceeds the " +
                                     std::to_string(experts) + " experts per MoE layer"});
      }
    }
    for (const std::string& name : method->KnobsBoundedByExperts()) {
      const int64_t v = method->knobs().GetInt(name);
      if (v > experts) {
        out.push_back({"knobs." + name, "must be at most the number of experts (" +
                                            std::to_string(experts) + "), got " +
                                            std::to_string(v)});
      }
    }
  }
  return out;
}

std::string FormatSpecProblems(const std::vector<SpecProblem>& problems,
                               const std::function<std::string(const std::string&)>& name) {
  std::string text;
  for (const SpecProblem& p : problems) {
    text += (text.empty() ? "" : "\n  ") + name(p.key) + ": " + p.message;
  }
  return text;
}

}  // namespace moebench
