// Parameter counts of a size preset computed from its shape, without building the model
// (`large` would allocate gigabytes). Tests check it against a built model's count.
#pragma once

#include <map>
#include <string>

#include "harness/model/sizes.h"
#include "harness/model/transformer.h"

namespace moebench {

ParamCounts CountModelParams(const ModelConfig& cfg, const std::string& method,
                             const std::map<std::string, std::string>& knobs = {});

}  // namespace moebench
