// The hand-sized model the FLOP and parameter tests count by hand.
#pragma once

#include "harness/model/sizes.h"

namespace moebench::testing {

// d 4, f 8, V 10, 2 + 2 layers, 2 heads, E 2 (block 1 of each stack is MoE), no dropout.
inline ModelConfig HandModel() {
  ModelConfig c;
  c.size = "hand";
  c.vocab = 10;
  c.d_model = 4;
  c.d_ff = 8;
  c.heads = 2;
  c.encoder_layers = 2;
  c.decoder_layers = 2;
  c.num_experts = 2;
  c.dropout = 0;
  return c;
}

}  // namespace moebench::testing
