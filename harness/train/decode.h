// Greedy and beam-search decoding with incremental decoder state, batched.
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
  int64_t beam = 1;             // 1: greedy
  double length_penalty = 1.0;  // beam score = sum log p / length^length_penalty (fairseq)
};

// src [B, S] -> one token-id sequence per sentence (without bos/eos).
std::vector<std::vector<int>> GreedyDecode(Transformer& model, const at::Tensor& src,
                                           const DecodeOptions& opt, RouteContext ctx);

// Beam search (fairseq-style): 2 * beam candidates per step, a hypothesis ending in eos is
// finished with its length-normalised score, a sentence stops when it has `beam` finished
// hypotheses; the best finished hypothesis is returned. The decoder caches follow the beams.
std::vector<std::vector<int>> BeamDecode(Transformer& model, const at::Tensor& src,
                                         const DecodeOptions& opt, RouteContext ctx);

// Greedy when opt.beam == 1, beam search otherwise.
std::vector<std::vector<int>> Decode(Transformer& model, const at::Tensor& src,
                                     const DecodeOptions& opt, const RouteContext& ctx);

}  // namespace moebench
