// Every capacity rule of the routers in one place: how many slots an expert has in a routing
// group (token choice), how many tokens an expert picks (expert choice), and the capacity that
// never drops (incremental decoding, inference without a capacity factor).
#pragma once

#include <cstdint>

namespace moebench {

// Note [Capacity rounding]: C = max(min_capacity, ceil(cf * n / E)) where n is the number of
// real tokens in the group (DeepSpeed's top-1 form; GShard passes cf * k). Rounding up never
// gives fewer slots than the paper's (T / E) * cf.
int64_t ExpertCapacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                       int64_t min_capacity);

// A capacity that cannot drop: every real token of the group fits in one expert (at least 1).
int64_t NoDropCapacity(int64_t n_tokens);

// Switch top-1: the training or evaluation capacity factor by Note [Capacity rounding].
int64_t Top1Capacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity);

// GShard top-2: ceil(2 * cf * n / E) per group (the paper's 2S/E at cf 1); cf <= 0 (the
// default at inference) never drops.
int64_t Top2Capacity(double capacity_factor, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity);

// Top-k token choice (DeepSpeed topkgating: _capacity with capacity_factor * k):
// max(min_capacity, ceil(k * cf * n / E)); Top2Capacity is its k = 2 (with cf > 0).
int64_t TopkCapacity(double capacity_factor, int64_t k, int64_t n_tokens, int64_t num_experts,
                     int64_t min_capacity);

// Expert choice: each expert picks k = round(c * n / E) tokens, at least 1 and at most n.
int64_t ExpertChoiceK(double c, int64_t n, int64_t num_experts);

}  // namespace moebench
