// Named model sizes. See README "Model sizes" for the table with parameter counts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moebench {

struct ModelConfig {
  std::string size;
  int64_t vocab = 0;  // set from the vocabulary
  int64_t d_model = 0;
  int64_t d_ff = 0;
  int64_t heads = 0;
  int64_t encoder_layers = 0;
  int64_t decoder_layers = 0;
  int64_t num_experts = 0;
  double dropout = 0.1;
  double label_smoothing = 0.1;
  int64_t max_positions = 1024;
  // Shared and fine-grained experts (run-spec fields shared_experts, expert_granularity;
  // Note [Shared and fine-grained experts] in harness/model/expert_layout.h).
  int64_t shared_experts = 0;
  int64_t expert_granularity = 1;
  // MoE in every other block (docs/METHODS.md section 0): blocks 1, 3, 5, ... of each stack.
  bool IsMoeBlock(int64_t block) const { return num_experts > 0 && block % 2 == 1; }
};

const std::vector<ModelConfig>& SizePresets();
// Throws, listing the known names, for an unknown size.
ModelConfig SizePreset(const std::string& name);

}  // namespace moebench
