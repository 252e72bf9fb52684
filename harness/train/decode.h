// Greedy decoding with incremental decoder state, batched.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "harness/model/transformer.h"

namespace moebench {

struct DecodeOptions {
  double max_len_a = 1.5;  // max target length = a * source length + b
  int64_t max_len_b = 10;
  int64_t bos_id = 2;
  int64_t eos_id = 3;
};

// src [B, S] -> one token-id sequence per sentence (without bos/eos).
std::vector<std::vector<int>> GreedyDecode(Transformer& model, const at::Tensor& src,
                                           const DecodeOptions& opt, RouteContext ctx);

}  // namespace moebench
