// Token-bucketed batching: examples of similar length go together so little compute is spent on
// padding, and every batch costs about the same.
#pragma once

#include <cstdint>
#include <vector>

namespace moebench {

// Groups example indices into batches of similar length. The cost of a batch is
// n_sentences * max(max_src_len, max_tgt_len) (its padded tokens) and is kept <= max_tokens;
// a single sentence longer than max_tokens still forms its own batch. Composition is by sorted
// length (ties broken by index), so it depends on the lengths only; with `shuffle`, the order
// of the batches is shuffled by `seed` (deterministically, on every platform).
// Throws std::runtime_error when the length vectors differ in size, a length is negative or
// max_tokens < 1.
std::vector<std::vector<int64_t>> MakeTokenBatches(const std::vector<int>& src_lens,
                                                   const std::vector<int>& tgt_lens,
                                                   int64_t max_tokens, bool shuffle, uint64_t seed);

}  // namespace moebench
