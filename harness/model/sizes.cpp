#include "harness/model/sizes.h"

#include <stdexcept>

namespace moebench {

const std::vector<ModelConfig>& SizePresets() {
  // size, vocab, d_model, d_ff, heads, enc, dec, experts
  static const std::vector<ModelConfig> presets = {
      {"tiny", 0, 64, 256, 4, 2, 2, 4},
      {"small", 0, 256, 1024, 4, 3, 3, 8},
      {"base", 0, 512, 2048, 8, 6, 6, 8},
      {"large", 0, 1024, 4096, 16, 6, 6, 16},
  };
  return presets;
}

ModelConfig SizePreset(const std::string& name) {
  std::string known;
  for (const auto& p : SizePresets()) {
    if (p.size == name) return p;
    known += (known.empty() ? "" : ", ") + p.size;
  }
  throw std::invalid_argument("unknown size '" + name + "' (known: " + known + ")");
}

}  // namespace moebench
