// Helpers the MoE layer's two paths share (harness/moe/moe_layer.cpp: the dynamic path and the
// statistics; harness/moe/static_path.cpp: the static-shape path). Internal to the layer.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "harness/comm/topology.h"

namespace moebench {

// The kept assignments of the layer's routed groups, concatenated by group.
struct LayerRows {
  at::Tensor token, expert, weight;
  at::Tensor source;  // the group of each row (several groups only)
};

// at::cat without its copy when there is one part (one worker).
at::Tensor Join(const std::vector<at::Tensor>& parts);

// Real tokens among the flattened positions [b0, b1) of right-padded sentences of
// `per_sentence` positions with these real lengths.
int64_t RealTokensIn(const std::vector<int64_t>& lengths, int64_t per_sentence, int64_t b0,
                     int64_t b1);

// a + b, where an undefined a is 0.
at::Tensor AddTo(const at::Tensor& a, const at::Tensor& b);

// Note [Node copies] (moe_layer.cpp): the other-node copies and the most nodes a token reaches,
// as fp64 device scalars; undefined (0) without rows. kept: which rows count (the static path
// lists dropped choices too); undefined: all.
std::pair<at::Tensor, at::Tensor> CountNodeCopies(const LayerRows& rows, const Topology& topo,
                                                  int64_t e, int64_t t, int rank,
                                                  const at::Tensor& kept = at::Tensor());

}  // namespace moebench
