// The run spec's validity: each field's rule (from the field table, run_spec.h) and the
// relations between fields that need the method and the model (knob checks, counts bounded by
// the number of experts). Every entry point uses it: `train` flags and --run-spec JSON
// (harness/cli/cmd_train.cpp), manifests (harness/sweep/manifest.cpp, which names file:line).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/spec/run_spec.h"

namespace moebench {

struct SpecProblem {
  std::string key;      // run-spec key ("log_every", "knobs.k_max", ...)
  std::string message;  // what is wrong and the allowed range
};

// The rule for one field's value (the field table's); false with `why` (the allowed range and
// the value given). A key that names no field has no rule.
bool CheckSpecField(const std::string& field, const nlohmann::json& value, std::string* why);

// Every problem of a spec at once (empty: valid). Knobs are checked as the method reads them.
std::vector<SpecProblem> CheckRunSpec(const RunSpec& spec);

// The relations only (knobs as the method reads them, counts bounded by the experts, ranks
// and workers): what a manifest checks per expanded run, having checked each field already.
std::vector<SpecProblem> CheckSpecRelations(const RunSpec& spec);

// One line per problem, "<name(key)>: <message>".
std::string FormatSpecProblems(const std::vector<SpecProblem>& problems,
                               const std::function<std::string(const std::string&)>& name);

}  // namespace moebench
